"""What a training run costs: FLOPs per token, memory per rank, the GPU's peak (for MFU).

FLOPs: 6 x (matmul parameters: the 2-D weights outside the token embedding) per token for the
matmuls forward and backward, plus 6 x n_layers x seq_len x dim for causal attention (the scores and their use, half
of the square masked away): the PaLM appendix-B count that MFU figures are usually quoted in.

Memory per rank (`memory_plan`), in bytes, of one training step:
- weights, gradients and AdamW's two moments in fp32 (4 + 4 + 8 bytes a parameter), divided by
  the world size under FSDP (everything sharded); DDP also holds a copy of the gradients in its
  all-reduce buckets;
- FSDP's working set: the largest block gathered unsharded in the compute dtype, twice (the one
  running and the one prefetched), plus its fp32 gradient before the reduce-scatter;
- activations saved for backward by one micro-batch, *measured*: a forward on the meta device
  (no memory is allocated) with saved-tensor hooks adding up what autograd keeps. The compute
  dtype is imitated by building the model in it (autocast does not run on meta), so norms and
  softmax statistics kept in fp32 under real autocast are counted at 2 bytes: a small undercount.
  Attention is counted as flash/memory-efficient attention keeps it on a GPU (q, k, v, the output
  and an fp32 log-sum-exp), not as the T x T scores the math path on meta or CPU would keep.
  With activation checkpointing each block keeps only its input, plus one block's activations
  while it is recomputed.
Not counted: the CUDA context and allocator fragmentation (typically 1-3 GB on a GPU).
"""
from __future__ import annotations

from dataclasses import dataclass
from unittest import mock

import torch
import torch.nn.functional as F

from encoder.model import Toto, TotoConfig
from encoder.mae import MAE, MAEConfig

# dense bf16 tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name()
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0,
                    "L40S": 362.0, "L4": 121.0, "A10": 125.0, "RTX 4090": 165.0}
GIB = 1024**3


def flops_per_token(config: TotoConfig, seq_len: int) -> float:
    """Training FLOPs per token (forward and backward), see the module docstring. For the MAE
    baseline (MAEConfig) per input patch: the trunk on the unmasked share, the decoder on all."""
    if isinstance(config, MAEConfig):
        with torch.device("meta"):
            params = dict(MAE(config).named_parameters())
        trunk = sum(p.numel() for n, p in params.items() if p.dim() == 2 and n.startswith(("layers.", "patch_in")))
        decoder = sum(p.numel() for n, p in params.items() if p.dim() == 2 and n.startswith("decoder"))
        keep = 1 - config.mask_ratio
        return 6.0 * (trunk * keep + decoder) + 6.0 * config.tokens * (config.n_layers * config.dim * keep**2
                                                                        + config.decoder_layers * config.decoder_width)
    return 6.0 * matmul_params(config) + 6.0 * config.n_layers * seq_len * config.dim


def matmul_params(config: TotoConfig) -> int:
    """Parameters a token's forward multiplies with: the 2-D weights outside the token embedding
    (the blocks and the head). The N of C = 6 N D, and the scaling study's token budget per parameter."""
    with torch.device("meta"):
        params = Toto(config).named_parameters()
        return sum(p.numel() for name, p in params if p.dim() == 2 and not name.startswith("tok_embeddings"))


def peak_tflops(device: torch.device, precision: str, override: float | None = None) -> float | None:
    """The device's peak for MFU: `override` if given, else the bf16 table for a known GPU, else None."""
    if override:
        return float(override)
    if device.type != "cuda" or precision != "bf16":
        return None
    name = torch.cuda.get_device_name(device)
    # longest key first: "A100" before "A10", "L40S" before "L4"
    return next((PEAK_BF16_TFLOPS[key] for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True) if key in name), None)


def count_params(config: TotoConfig) -> int:
    """Parameters of a Toto with `config` (built on meta: nothing allocated)."""
    with torch.device("meta"):
        return sum(p.numel() for p in Toto(config).parameters())


@dataclass(frozen=True)
class MemoryPlan:
    params: int
    weights: float
    gradients: float
    optimizer: float
    fsdp_working_set: float
    ddp_buckets: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.fsdp_working_set + self.ddp_buckets + self.activations


class _FlashLikeAttention(torch.autograd.Function):
    """Saves what flash attention saves for backward; computes nothing (meta tensors)."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = torch.empty_like(q)
        ctx.save_for_backward(q, k, v, out, torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device))
        return out

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - never run: only the forward is measured
        raise NotImplementedError


def _flash_like(q, k, v, attn_mask=None, is_causal=False, **_):
    return _FlashLikeAttention.apply(q, k, v)


def _saved_bytes(config: TotoConfig, micro_batch: int, seq_len: int, dtype: torch.dtype, checkpointing: bool) -> float:
    """Bytes of the tensors autograd saves in one forward on meta, views counted once by their base,
    weights and RoPE tables left out (they are not activations)."""
    with torch.device("meta"):
        model = Toto(config).to(dtype)
        tokens = torch.zeros(micro_batch, seq_len, dtype=torch.long)
    state = {id(t) for t in (*model.parameters(), *model.buffers())}
    saved: dict[int, torch.Tensor] = {}

    def pack(tensor):
        base = tensor if tensor._base is None else tensor._base
        if id(base) not in state:
            saved.setdefault(id(base), base)
        return tensor

    model.train()
    model.checkpoint_blocks = checkpointing
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            mock.patch.object(F, "scaled_dot_product_attention", _flash_like):
        model(tokens[:, :-1], targets=tokens[:, 1:], return_logits=False)
    return float(sum(t.numel() * t.element_size() for t in saved.values()))


def activation_bytes(config: TotoConfig, micro_batch: int, seq_len: int, dtype: torch.dtype, checkpointing: bool) -> float:
    """Peak bytes kept for backward by one micro-batch (measured on meta, see the module docstring).

    With checkpointing: what the checkpointed forward keeps, plus one block's activations, held
    again while that block is recomputed in backward."""
    total = _saved_bytes(config, micro_batch, seq_len, dtype, checkpointing)
    if checkpointing:
        two, one = (TotoConfig(**{**config.to_dict(), "n_layers": n}) for n in (2, 1))
        total += _saved_bytes(two, micro_batch, seq_len, dtype, False) - _saved_bytes(one, micro_batch, seq_len, dtype, False)
    return total


def memory_plan(config: TotoConfig, strategy: str, world_size: int, micro_batch: int, seq_len: int,
                precision: str, checkpointing: bool) -> MemoryPlan:
    """Bytes per rank of one training step (module docstring); strategy single|ddp|fsdp."""
    n = count_params(config)
    shard = world_size if strategy == "fsdp" else 1
    compute_bytes = 2 if precision == "bf16" else 4
    block = n_block_params(config)
    working = (2 * block * compute_bytes + 4 * block) if strategy == "fsdp" else 0.0
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return MemoryPlan(params=n, weights=4.0 * n / shard, gradients=4.0 * n / shard, optimizer=8.0 * n / shard,
                      fsdp_working_set=float(working), ddp_buckets=4.0 * n if strategy == "ddp" else 0.0,
                      activations=activation_bytes(config, micro_batch, seq_len, dtype, checkpointing))


def n_block_params(config: TotoConfig) -> int:
    """Parameters of the largest FSDP unit: a block, or the root (embedding, head, final norm)."""
    with torch.device("meta"):
        model = Toto(config)
    block = sum(p.numel() for p in model.layers[0].parameters())
    root = sum(p.numel() for p in model.parameters()) - block * config.n_layers
    return max(block, root)
