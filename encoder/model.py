"""The Toto transformer: a LLaMA-style causal decoder over visual tokens (paper section 3).

`Toto(config)(tokens)` gives next-token logits; `num_layers=n` runs only the first n blocks, which
is how the frozen encoder reads mid-depth features without paying for the rest; `cache=KVCache()`
decodes incrementally (generation, streaming). With `patch_dim` set the same trunk reads and
predicts continuous patches instead (paper Table 3, "patch-patch"); with `code_head` too it reads
patches and predicts the next patch's code ("patch-dVAE").
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.utils.checkpoint
from torch import nn

from encoder import tokens
from encoder.layers import Block, KVCache, RMSNorm, init_parameters, linear_cross_entropy, rope_tables
from toto_robot.checkpoint import load_weights, read_fields

__all__ = ["KVCache", "Toto", "TotoConfig", "TotoOutput", "load_toto"]


@dataclass
class TotoConfig:
    dim: int = 768
    n_layers: int = 12
    n_heads: int = 12
    vocab_size: int = tokens.vocab_size()  # 8192 codes + 4 special ids
    ffn_hidden: int | None = None  # None: LLaMA's rule, see `hidden_dim`
    multiple_of: int = 256
    norm_eps: float = 1e-5
    rope_base: float = 10000.0  # 50,000 for the paper's 32x32-token fine-tune
    max_seq_len: int = 4098  # 16 frames x 256 tokens + start + end; sizes the RoPE table, HF export
    patch_dim: int | None = None  # continuous patches in and out instead of token ids
    code_head: bool = False  # with patch_dim: patches in, the next patch's code out (vocab_size logits)

    # fields added after saved configs were complete; a file without one meant its default
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ("code_head",)

    def __post_init__(self):
        positive = ("dim", "n_layers", "n_heads", "vocab_size", "multiple_of", "max_seq_len")
        for name in positive + ("ffn_hidden", "patch_dim"):
            value = getattr(self, name)
            if (value is not None or name in positive) and (type(value) is not int or value <= 0):
                raise ValueError(f"TotoConfig.{name}={value!r}: must be a positive int")
        for name in ("norm_eps", "rope_base"):
            if not isinstance(getattr(self, name), (int, float)) or not getattr(self, name) > 0:
                raise ValueError(f"TotoConfig.{name}={getattr(self, name)!r}: must be a positive number")
        if type(self.code_head) is not bool or (self.code_head and self.patch_dim is None):
            raise ValueError(f"TotoConfig.code_head={self.code_head!r}: a bool, true only with patch_dim (patches in, codes out)")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(f"TotoConfig: dim={self.dim} must split into n_heads={self.n_heads} heads of even size (RoPE)")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def hidden_dim(self) -> int:
        """SwiGLU width: `ffn_hidden`, or LLaMA's 2/3 * 4 * dim rounded up to `multiple_of`."""
        if self.ffn_hidden is not None:
            return self.ffn_hidden
        return self.multiple_of * math.ceil(int(2 * 4 * self.dim / 3) / self.multiple_of)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TotoConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TotoConfig key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(known))}")
        return cls(**d)


@dataclass
class TotoOutput:
    logits: torch.Tensor | None  # (B, T, vocab or patch_dim); None if skipped
    hidden_states: tuple[torch.Tensor, ...] | None  # embeddings, then each block run (HF convention)
    last_hidden: torch.Tensor  # output of the last block run, before the final norm
    cache: KVCache | None
    loss: torch.Tensor | None = None  # mean next-token cross-entropy, when `targets` are given


class Toto(nn.Module):
    def __init__(self, config: TotoConfig):
        super().__init__()
        self.config = c = config
        if c.patch_dim is None:
            self.tok_embeddings = nn.Embedding(c.vocab_size, c.dim)
            self.output = nn.Linear(c.dim, c.vocab_size, bias=False)  # untied, as in LLaMA
        else:
            self.patch_in = nn.Linear(c.patch_dim, c.dim)
            self.output = nn.Linear(c.dim, c.vocab_size, bias=False) if c.code_head else nn.Linear(c.dim, c.patch_dim)
        self.layers = nn.ModuleList(Block(c.dim, c.n_heads, c.hidden_dim, c.norm_eps) for _ in range(c.n_layers))
        self.norm = RMSNorm(c.dim, c.norm_eps)
        cos, sin = rope_tables(c.head_dim, c.rope_base, c.max_seq_len)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        # recompute each block in backward instead of storing its activations (training only;
        # pretrain's train.activation_checkpointing): memory per block falls to its input
        self.checkpoint_blocks = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2/LLaMA init: N(0, 0.02), residual outputs (wo, w2) scaled by 1/sqrt(2 * n_layers)."""
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layers)
        init_parameters(self, lambda name, p: nn.init.normal_(
            p, std=residual_std if name.endswith(("attention.wo.weight", "feed_forward.w2.weight")) else 0.02))

    def forward(self, inputs: torch.Tensor, *, cache: KVCache | None = None, num_layers: int | None = None,
                output_hidden_states: bool = False, return_logits: bool = True,
                targets: torch.Tensor | None = None) -> TotoOutput:
        """Logits for every position of `inputs` (token ids (B, T), or patches (B, T, patch_dim)):
        over codes, or (patch_dim without code_head) the predicted next patches.

        num_layers=n runs only blocks 0..n-1; below n_layers the final norm and head are skipped
        too (logits None). With a cache, the new tokens follow the cached ones. `targets` (B, T)
        adds `loss`, the cross-entropy (PAD ignored) fused with the head so the full logits are
        never stored (see `linear_cross_entropy`); pass return_logits=False when training.
        """
        c = self.config
        n = c.n_layers if num_layers is None else num_layers
        if not 0 <= n <= c.n_layers:
            raise ValueError(f"num_layers={num_layers}: the model has {c.n_layers} blocks")
        if cache is not None and cache.num_layers not in (0, n):
            raise ValueError(f"the KV cache holds {cache.num_layers} blocks but this call runs {n}")
        x = self._embed(inputs)
        T = x.shape[1]
        start = 0 if cache is None else cache.position
        past = 0 if cache is None else cache.length
        cos, sin = self._rope(start, T)
        if past and T > 1:  # query i sees every cached key and the new keys up to itself
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
        else:
            mask = past == 0 and T > 1  # plain causal (True), or one new token seeing everything
        hidden = [x] if output_hidden_states else None
        recompute = self.checkpoint_blocks and self.training and cache is None and torch.is_grad_enabled()
        for i, layer in enumerate(self.layers[:n]):
            if recompute:
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, mask, None, i, use_reentrant=False)
            else:
                x = layer(x, cos, sin, mask, cache, i)
            if hidden is not None:
                hidden.append(x)
        logits = loss = None
        if n == c.n_layers and (return_logits or targets is not None):
            normed = self.norm(x)
            logits = self.output(normed) if return_logits else None
            if targets is not None:
                if c.patch_dim is not None and not c.code_head:
                    raise ValueError("targets are token ids; a patch-mode model is trained with next_patch_loss")
                loss = linear_cross_entropy(normed.flatten(0, 1), self.output.weight, targets.flatten(), tokens.PAD)
        elif targets is not None:
            raise ValueError(f"targets need the head: num_layers={n} stops before it")
        return TotoOutput(logits, tuple(hidden) if hidden is not None else None, x, cache, loss)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample continuations of `prompt` (B, T0) with the KV cache: returns (B, T0 + max_new_tokens).

        temperature 0 is greedy; top_k keeps the k most likely tokens before sampling.
        """
        if self.config.patch_dim is not None:
            raise ValueError("generate() feeds sampled token ids back in; this model reads continuous patches")
        cache, new, step = KVCache(), [], prompt
        for _ in range(max_new_tokens):
            last = self(step, cache=cache, return_logits=False).last_hidden[:, -1]
            logits = self.output(self.norm(last)).float()  # head on the last position only
            if temperature <= 0:
                step = logits.argmax(-1, keepdim=True)
            else:
                if top_k is not None:
                    kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = torch.softmax(logits / temperature, dim=-1)
                step = torch.multinomial(probs, 1, generator=generator)
            new.append(step)
        return torch.cat([prompt, *new], dim=1)

    def _embed(self, inputs: torch.Tensor) -> torch.Tensor:
        p = self.config.patch_dim
        if p is None:
            if inputs.dim() != 2 or inputs.is_floating_point():
                raise ValueError(f"expected token ids (B, T) of an integer dtype, got {inputs.dtype} {tuple(inputs.shape)}")
            return self.tok_embeddings(inputs)
        if inputs.dim() != 3 or inputs.shape[-1] != p or not inputs.is_floating_point():
            raise ValueError(f"expected float patches (B, T, {p}), got {inputs.dtype} {tuple(inputs.shape)}")
        return self.patch_in(inputs)

    def _rope(self, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin of positions start..start+length-1, growing the table past max_seq_len if needed."""
        if start + length > self.rope_cos.shape[0]:
            self.rope_cos, self.rope_sin = rope_tables(
                self.config.head_dim, self.config.rope_base, 2 * (start + length), self.rope_cos.device)
        return self.rope_cos[start:start + length], self.rope_sin[start:start + length]


def load_toto(directory, name: str = "toto") -> Toto:
    """The model saved by `save_weights(directory, name, model.state_dict(), kind="toto", config=...)`."""
    state, meta = load_weights(directory, name, kind="toto")
    model = Toto(TotoConfig.from_dict(read_fields(meta.get("config"), TotoConfig, f"{directory}/{name}.json", require_all=True)))
    model.load_state_dict(state)
    return model
