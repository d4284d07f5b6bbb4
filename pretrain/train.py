"""The pre-training loop: next-token prediction on token shards (paper section 3), or next-patch
regression on pixel shards (Table 3, "patch-patch": a model with patch_dim and a `patchify`).

One call of `train` runs or resumes a job in `out_dir`, alone or under
`torchrun --nproc_per_node=N` (DDP, or FSDP for ~1B+ models: pretrain/distributed.py).
Recipe: AdamW (0.9, 0.95), linear warm-up then cosine to 0.1 x lr, gradient clipping at 1.0,
bf16 autocast where bf16 is native (precision=auto), ~1M tokens a step reached by accumulating micro-batches over ranks.

Exactness. Batches are a pure function of (seed, step, micro-step, rank) (pretrain/batches.py)
and the learning rate of the step (pretrain/schedule.py); weights, AdamW moments and RNG are
checkpointed, so a run killed at any point and resumed reproduces the uninterrupted run's losses
exactly (CPU fp32, fixed thread count). Each micro-batch loss is weighted by its share of the
global step's targets (non-PAD tokens, or patches), so the gradient is the target mean over the
whole global batch, however it is split into ranks and micro-steps.

Weight decay applies to the matrices of Linear layers only: RMSNorm gains, biases and the token
embedding are exempt (GPT/LLaMA practice: decaying embeddings pulls rarely seen codes to zero).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import nn
from tqdm import tqdm

from encoder.model import Toto, TotoConfig
from encoder.objectives import next_code_loss, next_code_losses, next_patch_loss, next_token_loss, next_token_losses
from encoder.tokens import PAD
from pretrain import checkpoints, distributed, sizing
from pretrain.batches import TokenBatches, is_pixels, validation_batches
from pretrain.metrics import MetricsLogger, write_positions
from pretrain.schedule import lr_at
from pretrain.shards import ShardSet
from toto_robot.compute import PRECISIONS, Compute, resolve
from encoder.code_embedding import fsq_code_embedding
from encoder.mae import MAE, MAEConfig
from encoder.tokens import CODE_OFFSET
from toto_robot.cli import Interrupted


CODE_EMBEDDINGS = ("normal", "fsq")


@dataclass
class TrainConfig:
    """Defaults: the embedded run (`python pretrain/run.py`, model nano, 120 steps of 16k tokens, 2.0M
    tokens), so Python and the CLI agree; the paper's recipe (1M-token steps, 2,000 warm-up steps)
    is pretrain/conf/recipe/paper.yaml, which every paper-scale model preset includes."""

    steps: int = 120
    micro_batch: int = 1  # sequences per forward pass per rank
    grad_accum: Optional[int] = None  # None: the smallest count reaching batch_tokens (rounded)
    batch_tokens: int = 16_392  # tokens per optimizer step over all micro-batches and ranks (4 sequences of 4,098)
    lr: float = 3e-4
    betas: Tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1  # Linear matrices only (module docstring)
    eps: float = 1e-8
    warmup_steps: int = 15
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of lr
    grad_clip: float = 1.0  # max global grad norm; <= 0 disables clipping (the norm is still logged)
    # auto | fp32 | bf16 (autocast; weights and optimizer stay fp32); auto: bf16 where native (toto_robot/compute.py)
    precision: str = "auto"
    val_every: int = 40  # steps between validations (and one at the end); 0: only at the end
    val_batches: int = 4  # micro-batches per validation set
    ckpt_every: int = 20  # 0: only at the end
    keep_checkpoints: int = 2
    log_every: int = 1
    seed: int = 0
    resume: bool = True  # continue from out_dir's latest checkpoint if there is one
    strategy: str = "auto"  # "auto" | "ddp" | "fsdp" (auto: fsdp from ~1B params); unwrapped without torchrun
    compile: bool = False
    activation_checkpointing: bool = False  # recompute each block in backward: activations per block fall to its input
    # how the visual codes' embedding rows start: "normal" N(0, 0.02), or "fsq": from each FSQ code's
    # digits (encoder/code_embedding.py), so codes one level apart start close (issue 24)
    code_embedding: str = "normal"
    peak_tflops: Optional[float] = None  # one device's peak, for the logged MFU; None: known GPUs' bf16 peak (pretrain/sizing.py)
    progress: bool = True

    def __post_init__(self):
        positive = ("steps", "micro_batch", "batch_tokens", "val_batches", "keep_checkpoints", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)}: must be >= 1")
        for name in ("warmup_steps", "val_every", "ckpt_every", "weight_decay", "lr"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)}: must be >= 0")
        if self.grad_accum is not None and self.grad_accum < 1:
            raise ValueError(f"TrainConfig.grad_accum={self.grad_accum}: must be >= 1 or None (derived from batch_tokens)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision={self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if self.strategy not in distributed.STRATEGIES:
            raise ValueError(f"TrainConfig.strategy={self.strategy!r}: use one of {', '.join(distributed.STRATEGIES)}")
        if self.code_embedding not in CODE_EMBEDDINGS:
            raise ValueError(f"TrainConfig.code_embedding={self.code_embedding!r}: use one of {', '.join(CODE_EMBEDDINGS)}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"TrainConfig.min_lr_ratio={self.min_lr_ratio}: must be in [0, 1]")


def start_code_rows(model: nn.Module, code_values: torch.Tensor, seed: int) -> None:
    """Start the visual codes' embedding rows from their FSQ latents (encoder/code_embedding.py)."""
    rows = model.tok_embeddings.weight
    if CODE_OFFSET + len(code_values) > rows.shape[0]:
        raise ValueError(f"{len(code_values)} codes do not fit a vocabulary of {rows.shape[0]} ids")
    init = fsq_code_embedding(code_values, rows.shape[1], torch.Generator().manual_seed(seed))
    with torch.no_grad():
        rows[CODE_OFFSET:CODE_OFFSET + len(code_values)] = init.to(rows.dtype)


def _due(step: int, every: int, last: bool) -> bool:
    return last or (every > 0 and step % every == 0)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay for >= 2-D weights outside embeddings, none for the rest."""
    embedding = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters(recurse=False)}
    decay, plain = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 and id(p) not in embedding else plain).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def load_init_weights(model: nn.Module, weights: dict) -> None:
    """Start from `weights` (e.g. the 16x16 model for the 32x32 fine-tune): every parameter must
    match by name and shape; RoPE tables are buffers rebuilt from the config, so the sequence
    length and rope_base may differ."""
    own = model.state_dict()
    missing, unexpected = sorted(own.keys() - weights.keys()), sorted(weights.keys() - own.keys())
    reshaped = sorted(k for k in own.keys() & weights.keys() if tuple(own[k].shape) != tuple(weights[k].shape))
    if missing or unexpected or reshaped:
        raise ValueError(
            f"init_weights do not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"other shape {reshaped[:3]}): start from a checkpoint of the same dim/n_layers/n_heads/vocab_size"
        )
    model.load_state_dict(weights)


class Objective:
    """How micro-batches of shard rows become model inputs and losses; one per run.

    Tokens (patchify None): next-token cross-entropy; a row's targets are its non-PAD tokens
    after the first. Patches: `patchify` turns uint8 pixel rows into patch sequences on the
    device (uint8 is what crosses the bus), scored by next_patch_loss; every patch after a row's
    first is a target. The target counts weight the micro-batches (module docstring).
    """

    def __init__(self, patchify: Callable[[torch.Tensor], torch.Tensor] | None = None, seq_len: int | None = None):
        self.patchify, self.seq_len = patchify, seq_len

    def inputs(self, rows: torch.Tensor, device: torch.device) -> torch.Tensor:
        rows = rows.to(device, non_blocking=True)
        return rows if self.patchify is None else self.patchify(rows)

    def loss(self, model, inputs: torch.Tensor) -> torch.Tensor:
        return next_token_loss(model, inputs) if self.patchify is None else next_patch_loss(model, inputs)

    def targets(self, rows: torch.Tensor) -> int:
        if self.patchify is None:
            return int((rows[:, 1:] != PAD).sum())
        return rows.shape[0] * (self.seq_len - 1)

    # targets a row's frames lack against a token row's layout (whose start token is never a target): 1 for
    # patch rows, whose first patch is not predicted; Fig. 10's frames are read with this shift
    unpredicted = 0

    @property
    def positional(self) -> bool:
        """Whether `position_losses` applies: token rows only (a patch regression's or a masked
        model's loss by position is not the paper's Fig. 10)."""
        return self.patchify is None

    def position_losses(self, model, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-position losses (B, T-1), target mask) for the validation's loss by position."""
        return next_token_losses(model, inputs)


class MaskedObjective(Objective):
    """The MAE baseline (encoder/mae.py): every frame of a pixel row is its own image; the loss is the
    model's masked-patch regression, its targets the masked patches. A row of T frames is T images,
    so at the same batch_tokens the MAE sees exactly the frames a Toto of the same settings sees."""

    def __init__(self, patchify, config):
        super().__init__(patchify, seq_len=None)
        self.tokens = config.tokens
        self.masked = config.tokens - max(1, round(config.tokens * (1 - config.mask_ratio)))

    def inputs(self, rows: torch.Tensor, device: torch.device) -> torch.Tensor:
        patches = self.patchify(rows.to(device, non_blocking=True))  # (B, T*L, P)
        return patches.reshape(-1, self.tokens, patches.shape[-1])  # (B*T, L, P): frames

    def loss(self, model, inputs: torch.Tensor) -> torch.Tensor:
        return model(inputs).loss

    def targets(self, rows: torch.Tensor) -> int:
        return rows.shape[0] * rows.shape[1] * self.masked

    @property
    def positional(self) -> bool:
        return False


class CodeObjective(Objective):
    """Patches in, the next patch's code out (Table 3's patch-dVAE): `patchify` gives the inputs and
    `codes` the targets, both from the same uint8 rows on the device; every patch after a row's
    first is a target, and the loss by position is Fig. 10's, as for tokens."""

    unpredicted = 1

    def __init__(self, patchify, codes, seq_len: int):
        super().__init__(patchify, seq_len)
        self.codes = codes

    def inputs(self, rows: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        rows = rows.to(device, non_blocking=True)
        return self.patchify(rows), self.codes(rows)

    def loss(self, model, inputs) -> torch.Tensor:
        return next_code_loss(model, *inputs)

    @property
    def positional(self) -> bool:
        return True

    def position_losses(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        return next_code_losses(model, *inputs)


def build_model(model_config):
    """The network a config describes: a Toto (TotoConfig) or the MAE baseline (MAEConfig)."""
    return MAE(model_config) if isinstance(model_config, MAEConfig) else Toto(model_config)


def _objective(model_config, probe: TokenBatches, patchify, codes=None) -> Objective:
    """The run's Objective, after checking that the model, the rows, `patchify` and `codes` agree."""
    if getattr(model_config, "code_head", False) != (codes is not None):
        raise ValueError("a code_head model (patches in, codes out) trains with `codes` (pretrain.batches.code_sequences), "
                         "and only such a model does")
    if isinstance(model_config, MAEConfig):
        if not probe.pixels or patchify is None:
            raise ValueError("the MAE objective trains on pixel rows (objective=mae tokenizes with the patch tokenizer)")
        objective = MaskedObjective(patchify, model_config)
        objective.seq_len = int(patchify(probe.micro_batch_tokens(0, 0, 0)).shape[1])  # patches a row: sizes the batch
        return objective
    if (model_config.patch_dim is not None) != probe.pixels:
        if probe.pixels:
            raise ValueError(f"the train sets hold pixel rows {probe.row_shape}: train them with a patch model "
                             "(set patch_dim) and patchify")
        raise ValueError("the model has patch_dim set but the train sets hold token rows: "
                         "patch models train on pixel shards (tokenizer=patch)")
    if not probe.pixels:
        if patchify is not None:
            raise ValueError("patchify is for pixel rows but the train sets hold token rows: pass patchify=None")
        return Objective(seq_len=probe.row_shape[0])
    if patchify is None:
        raise ValueError("pixel rows need patchify (uint8 rows -> patch sequences), e.g. "
                         "pretrain.batches.patch_sequences(load_tokenizer('patch'))")
    rows = probe.micro_batch_tokens(0, 0, 0)
    sample = patchify(rows)
    if sample.ndim != 3 or sample.shape[-1] != model_config.patch_dim:
        raise ValueError(f"patchify gives patches of shape {tuple(sample.shape)} but the model's patch_dim is {model_config.patch_dim}")
    if codes is None:
        return Objective(patchify, int(sample.shape[1]))
    targets = codes(rows)
    if tuple(targets.shape) != tuple(sample.shape[:2]):
        raise ValueError(f"codes gives targets of shape {tuple(targets.shape)} for patches {tuple(sample.shape[:2])}: "
                         "the code tokenizer must cut frames into the patch grid")
    if int(targets.max()) >= model_config.vocab_size:
        raise ValueError(f"code {int(targets.max())} is outside the model's vocab_size {model_config.vocab_size}")
    return CodeObjective(patchify, codes, int(sample.shape[1]))


@torch.no_grad()
def _set_name(shard_set, i: int) -> str:
    """tokens/<source>/<split> -> <source>; a plain directory keeps its own name."""
    directory = shard_set.directory
    return directory.parent.name if directory.name in ("val", "train") else directory.name or f"set{i}"


def _sum_over_batches(model: nn.Module, batches: list[torch.Tensor], info: distributed.DistInfo, compute: Compute,
                      pad_ranks: bool, measure: Callable[[torch.Tensor], torch.Tensor], size: int) -> list[float]:
    """Sum over ranks of `measure(rows)` (a vector of `size`) over fixed `batches`, split round-robin.

    With FSDP every rank must run the same number of forwards (they all-gather weights), so
    `pad_ranks` repeats batch 0, its measure discarded, on ranks that ran out.
    """
    was_training = model.training
    model.eval()
    totals = torch.zeros(size, dtype=torch.float64, device=info.device)  # no sync per batch
    rounds = math.ceil(len(batches) / info.world_size) if pad_ranks else None
    mine = list(range(info.rank, len(batches), info.world_size))
    for i in range(rounds if rounds is not None else len(mine)):
        real = i < len(mine)
        with compute.autocast():
            values = measure(batches[mine[i] if real else 0])
        if real:
            totals += values.detach().double()
    model.train(was_training)
    return distributed.sum_over_ranks(totals, info)


def evaluate(model: nn.Module, batches: list[torch.Tensor], info: distributed.DistInfo, compute: Compute, pad_ranks: bool,
             objective: Objective | None = None) -> float:
    """Target-mean loss of `objective` (default: next-token) over fixed `batches`, split over ranks."""
    objective = objective or Objective()

    def measure(rows: torch.Tensor) -> torch.Tensor:
        count = objective.targets(rows)
        loss = objective.loss(model, objective.inputs(rows, info.device)).detach().double()
        return torch.stack([loss * count, torch.tensor(float(count), dtype=torch.float64, device=loss.device)])

    loss_sum, count = _sum_over_batches(model, batches, info, compute, pad_ranks, measure, 2)
    return loss_sum / count if count > 0 else float("nan")


def evaluate_by_position(model: nn.Module, batches: list[torch.Tensor], info: distributed.DistInfo, compute: Compute,
                         pad_ranks: bool, objective: Objective) -> tuple[float, list[float]]:
    """(target-mean loss, mean loss at each target position of a row) from one forward a batch: the
    validation's loss and the paper's Fig. 10 together. A position with no target in any row gets NaN."""
    width = (objective.seq_len or batches[0].shape[1]) - 1  # targets a row: its tokens, or patches of pixel rows

    def measure(rows: torch.Tensor) -> torch.Tensor:
        losses, valid = objective.position_losses(model, objective.inputs(rows, info.device))
        return torch.cat([(losses * valid).sum(0).double(), valid.sum(0).double()])

    totals = _sum_over_batches(model, batches, info, compute, pad_ranks, measure, 2 * width)
    sums, counts = totals[:width], totals[width:]
    mean = sum(sums) / sum(counts) if sum(counts) > 0 else float("nan")
    return mean, [s / c if c > 0 else float("nan") for s, c in zip(sums, counts)]


def _global_step(forward_model, wrapped, model, optimizer, micro: list[torch.Tensor], cfg: TrainConfig, strategy: str,
                 info: distributed.DistInfo, objective: Objective, compute: Compute) -> tuple[float, float]:
    """One optimizer step over this rank's micro-batches; returns (global target-mean loss, grad norm)."""
    counts = [objective.targets(rows) for rows in micro]
    total = int(distributed.sum_over_ranks([sum(counts)], info)[0])
    loss_sum = torch.zeros((), dtype=torch.float64, device=info.device)  # read once per step, not per micro-batch
    for m, rows in enumerate(micro):
        with distributed.gradient_sync(wrapped, strategy, sync=m == len(micro) - 1):
            with compute.autocast():
                loss = objective.loss(forward_model, objective.inputs(rows, info.device))
            # DDP/FSDP average gradients over ranks: x world_size turns that into the global token mean
            (loss * (counts[m] * info.world_size / total)).backward()
        loss_sum += loss.detach().double() * counts[m]
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
    grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)  # FSDP: DTensor
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return distributed.sum_over_ranks(loss_sum, info)[0] / total, grad_norm


def _efficiency(flops: float, seconds: float, info: distributed.DistInfo, peak: float | None) -> dict:
    """Model TFLOP/s per device of `flops` done in `seconds` (the PaLM count, pretrain/sizing.py), MFU
    against `peak`, peak GPU memory."""
    tflops = flops / max(seconds, 1e-9) / info.world_size / 1e12
    out = {"tflops_per_device": tflops}
    if peak:
        out["mfu"] = tflops / peak
    if info.device.type == "cuda":
        out["gpu_mem_peak_gib"] = torch.cuda.max_memory_allocated(info.device) / sizing.GIB
    return out


def train(model_config: TotoConfig, train_sets: Sequence[tuple[ShardSet, float]], val_sets: Sequence[ShardSet],
          cfg: TrainConfig, out_dir, *, init_weights: dict | None = None,
          patchify: Callable[[torch.Tensor], torch.Tensor] | None = None, device: str = "auto",
          frame_tokens: int | None = None, code_values: torch.Tensor | None = None,
          codes: Callable[[torch.Tensor], torch.Tensor] | None = None,
          dist_info: distributed.DistInfo | None = None) -> dict:
    """Train (or resume) in `out_dir`; return a summary dict (the same on every rank).

    Token shards train a token model (patch_dim None). Pixel shards train a patch model: give
    `patchify`, uint8 pixel rows (B, T, R, R, 3) -> float (B, L, patch_dim), e.g.
    pretrain.batches.patch_sequences(tokenizer); sequence lengths and token counts are then in
    patches (L = T*g*g). A code_head model reads those patches and predicts each next patch's code:
    give `codes` too, uint8 rows -> (B, L) ids (pretrain.batches.code_sequences).

    Summary: steps, final_train_loss, final_val_loss (NaN without val_sets), tokens_seen,
    tokens_per_s (training throughput of this call), checkpoint_dir, wall_time_s, resumed_from,
    and the derived layout (strategy, world_size, grad_accum, global_batch, seq_len, params, device, precision).
    `device`: auto|cpu|cuda|cuda:N (toto_robot/compute.py; under torchrun each rank's own GPU), resolved here
    unless the caller already joined the group: then it passes its `dist_info` (resolved device and group, used
    as they are, once) and leaves the group itself.
    `frame_tokens` (tokens a frame, g*g) marks the frames in the validation loss by position
    (pretrain/metrics.py, val_positions.json and .png). `code_values` (K, d), each code's quantized
    FSQ latent, is what cfg.code_embedding="fsq" starts the code rows from.
    """
    if cfg.code_embedding == "fsq" and (code_values is None or model_config.patch_dim is not None):
        raise ValueError("train.code_embedding=fsq needs an FSQ tokenizer's codes (tokenizer=fsq); use train.code_embedding=normal")
    info = dist_info or distributed.setup(device)
    joined_here = dist_info is None  # a caller's group (the pipeline's) is the caller's to leave
    try:
        summary = Trainer(model_config, train_sets, val_sets, cfg, Path(out_dir), info, init_weights, patchify, frame_tokens,
                          code_values, codes).run()
    except BaseException:
        if joined_here:
            distributed.teardown(info, meet=False)
        raise
    if joined_here:
        distributed.teardown(info)
    return summary


class Trainer:
    """One training run (torchtitan's shape): the constructor lays out data, model and optimizer; `resume`
    loads the latest checkpoint; `step`, `validate` and `save` are one global step, one validation and
    one checkpoint; `run` loops them and returns the summary. `train()` is the way in."""

    def __init__(self, model_config: TotoConfig, train_sets, val_sets, cfg: TrainConfig, out_dir: Path, info,
                 init_weights=None, patchify=None, frame_tokens: int | None = None, code_values: torch.Tensor | None = None,
                 codes=None):
        self.wall_start = time.perf_counter()
        self.model_config, self.cfg, self.out_dir, self.info, self.frame_tokens = model_config, cfg, out_dir, info, frame_tokens
        self.compute = resolve(info.device, cfg.precision)
        if info.is_main:
            self.compute.announce("train")
        self._lay_out_data(train_sets, val_sets, patchify, codes)
        self._build(init_weights, code_values)
        self.start_step, self.tokens_seen, self.loss, self.resumed_from = 0, 0, float("nan"), None
        self.writer = checkpoints.BackgroundWriter()

    def _lay_out_data(self, train_sets, val_sets, patchify, codes) -> None:
        cfg, info = self.cfg, self.info
        probe = TokenBatches(train_sets, seed=cfg.seed, micro_batch=1, grad_accum=1)
        self.objective = _objective(self.model_config, probe, patchify, codes)
        self.seq_len = seq_len = self.objective.seq_len
        if seq_len > getattr(self.model_config, "max_seq_len", seq_len):
            kind = "patch" if probe.pixels else "token"
            raise ValueError(f"{kind} rows hold {seq_len} tokens but the model's max_seq_len is {self.model_config.max_seq_len}: "
                             f"set max_seq_len >= {seq_len}")
        self.grad_accum = cfg.grad_accum or max(1, round(cfg.batch_tokens / (cfg.micro_batch * seq_len * info.world_size)))
        self.batches = TokenBatches(train_sets, seed=cfg.seed, micro_batch=cfg.micro_batch, grad_accum=self.grad_accum,
                                    world_size=info.world_size)
        self.step_tokens = self.batches.global_batch * seq_len
        # per source (named by its shard directory, tokens/<source>/val): the overall figure mixes
        # sources of very different difficulty, so each one is logged too
        self.val_groups = {}
        for i, val_set in enumerate(val_sets):
            name = _set_name(val_set, i)
            self.val_groups[name if name not in self.val_groups else f"{name}{i}"] = validation_batches(
                [val_set], cfg.micro_batch, cfg.val_batches)
        self.val = [rows for group in self.val_groups.values() for rows in group]
        if any(is_pixels(rows.shape[1:]) != probe.pixels for rows in self.val):
            raise ValueError(f"validation sets must hold {'pixel' if probe.pixels else 'token'} rows like the train sets")

    def _build(self, init_weights, code_values) -> None:
        cfg, info = self.cfg, self.info
        torch.manual_seed(cfg.seed)  # same initial weights on every rank and in every rerun
        model = build_model(self.model_config)
        if init_weights is not None:
            load_init_weights(model, init_weights)
        elif cfg.code_embedding == "fsq":
            start_code_rows(model, code_values, cfg.seed)
        model.to(info.device)
        model.checkpoint_blocks = cfg.activation_checkpointing
        self.model, self.n_params = model, sum(p.numel() for p in model.parameters())
        self.strategy = distributed.resolve_strategy(cfg.strategy, self.n_params, info.world_size)
        self.wrapped = distributed.wrap(model, self.strategy, info, self.compute.precision)
        self.forward_model = torch.compile(self.wrapped) if cfg.compile else self.wrapped
        fused = {"fused": True} if info.device.type == "cuda" else {}  # one kernel for all parameters
        self.optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                           **fused)
        self.token_flops = sizing.flops_per_token(self.model_config, self.seq_len)
        self.peak = sizing.peak_tflops(info.device, self.compute.precision, cfg.peak_tflops)

    def lr_of(self, step: int) -> float:
        cfg = self.cfg
        return lr_at(step, lr=cfg.lr, warmup_steps=cfg.warmup_steps, total_steps=cfg.steps, min_lr_ratio=cfg.min_lr_ratio)

    def resume(self) -> Path | None:
        """Load the latest checkpoint in out_dir, if any (and cfg.resume); its path."""
        latest = checkpoints.latest_checkpoint(self.out_dir) if self.cfg.resume else None
        if latest is None:
            return None
        info = self.info
        # every rank checks the config; under FSDP only rank 0 reads the tensors and broadcasts them
        reads = self.strategy != "fsdp" or info.is_main
        model_state, state = checkpoints.load_checkpoint(latest, self.model_config.to_dict(), tensors=reads,
                                                         schema=type(self.model_config))
        distributed.load_full_state(self.model, self.optimizer, model_state, state.get("optimizer", {}), self.strategy)
        small = ("step", "tokens_seen", "loss", "rng")
        state = distributed.broadcast_object({k: state[k] for k in small} if info.is_main else None, info)
        self.start_step, self.tokens_seen, self.loss, self.resumed_from = state["step"], state["tokens_seen"], state["loss"], str(latest)
        torch.set_rng_state(state["rng"]["torch"])
        if torch.cuda.is_available() and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], info.device)
        return latest

    def step(self, step: int) -> tuple[float, float]:
        """One global step (every micro-batch of every rank) at the schedule's lr: (loss, grad norm)."""
        lr = self.lr_of(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        micro = [self.batches.micro_batch_tokens(step, m, self.info.rank) for m in range(self.grad_accum)]
        self.loss, grad_norm = _global_step(self.forward_model, self.wrapped, self.model, self.optimizer, micro, self.cfg,
                                            self.strategy, self.info, self.objective, self.compute)
        self.tokens_seen += self.step_tokens
        return self.loss, grad_norm

    def save(self, step: int) -> Path:
        """Checkpoint after `step` (a collective: every rank calls it; rank 0 writes in the background)."""
        cfg, info = self.cfg, self.info
        model_state, optim_state = distributed.full_state(self.model, self.optimizer)  # collective: all ranks
        if info.is_main:
            cuda_rng = torch.cuda.get_rng_state(info.device) if torch.cuda.is_available() else None
            state = {
                "step": step, "tokens_seen": self.tokens_seen, "loss": self.loss, "optimizer": optim_state,
                "rng": {"torch": torch.get_rng_state(), "cuda": cuda_rng},
                "scheduler": {"kind": "warmup_cosine", "next_lr": self.lr_of(step)},  # a pure function of the step
                "train_config": dataclasses.asdict(cfg), "model_config": self.model_config.to_dict(),
                "world_size": info.world_size, "global_batch": self.batches.global_batch,
            }
            if info.device.type == "cpu":  # the state dicts alias the live weights: copy before training moves on
                model_state, state = checkpoints.host_copy(model_state), checkpoints.host_copy(state)
            # (on a GPU full_state's cpu_offload already made host copies: no second 14 GB copy at 1b)
            self.writer.submit(checkpoints.save_checkpoint, self.out_dir, step, model_state, self.model_config.to_dict(), state,
                               cfg.keep_checkpoints)
        return checkpoints.checkpoints_dir(self.out_dir) / f"step_{step:07d}"

    def validate(self, step: int) -> dict:
        """{"val_loss": target-weighted mean over all sets, "val_loss/<source>": each set's}; also
        writes each set's loss by position (rank 0)."""
        info, objective, fsdp = self.info, self.objective, self.strategy == "fsdp"
        losses, counts, positions = {}, {}, {}
        for name, group in self.val_groups.items():
            counts[name] = sum(objective.targets(rows) for rows in group)
            if objective.positional:  # the mean comes from the per-position losses: one forward serves both
                losses[name], positions[name] = evaluate_by_position(self.model, group, info, self.compute, fsdp, objective)
                positions[name] = [float("nan")] * objective.unpredicted + positions[name]  # index p: frame p // frame_tokens
            else:
                losses[name] = evaluate(self.model, group, info, self.compute, pad_ranks=fsdp, objective=objective)
        if info.is_main and objective.positional:
            write_positions(self.out_dir, step, self.frame_tokens, positions)
        total = sum(counts.values())
        overall = sum(losses[n] * counts[n] for n in losses) / total if total else float("nan")
        return {"val_loss": overall, **({f"val_loss/{n}": v for n, v in losses.items()} if len(losses) > 1 else {})}

    def run(self) -> dict:
        """Resume, train to cfg.steps with logging, validation and checkpoints on their schedules; the summary."""
        cfg, info = self.cfg, self.info
        latest = self.resume()
        start_step = self.start_step
        logger = MetricsLogger(self.out_dir, enabled=info.is_main, resume_step=start_step)
        bar = tqdm(total=cfg.steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True,
                   disable=not (cfg.progress and info.is_main))
        val_loss, ckpt_dir = float("nan"), latest
        train_time = window_time = 0.0
        window_tokens = 0
        self.model.train()
        step = start_step
        try:
            for step in range(start_step, cfg.steps):
                t0 = time.perf_counter()
                loss, grad_norm = self.step(step)
                done = step + 1
                elapsed = time.perf_counter() - t0
                train_time, window_time, window_tokens = train_time + elapsed, window_time + elapsed, window_tokens + self.step_tokens
                if not math.isfinite(loss):
                    raise FloatingPointError(f"training loss is {loss} at step {done}: lower lr or use precision=fp32; "
                                             f"rerun to resume from the last checkpoint in {self.out_dir}")
                last = done == cfg.steps
                validating = bool(self.val) and _due(done, cfg.val_every, last)
                val_record = self.validate(done) if validating else {}
                val_loss = val_record.get("val_loss", val_loss)
                if validating or _due(done, cfg.log_every, last):
                    record = {"step": done, "loss": loss, "lr": self.lr_of(step), "grad_norm": grad_norm,
                              "tokens_seen": self.tokens_seen, "tokens_per_s": window_tokens / max(window_time, 1e-9),
                              **_efficiency(self.token_flops * window_tokens, window_time, info, self.peak)}
                    logger.log({**record, **val_record})
                    window_time, window_tokens = 0.0, 0
                if validating or last:
                    logger.plot()
                if _due(done, cfg.ckpt_every, last):
                    ckpt_dir = self.save(done)
                bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{self.step_tokens / max(elapsed, 1e-9):,.0f}", refresh=False)
                bar.update(1)
            if start_step >= cfg.steps and self.val:  # nothing left to train: report the checkpoint's validation loss
                val_loss = self.validate(start_step)["val_loss"]
        except KeyboardInterrupt:
            raise Interrupted(f"at step {step} of {cfg.steps} (checkpoints in {self.out_dir / 'checkpoints'})") from None
        finally:
            bar.close()
            logger.close()
            self.writer.wait()  # the last checkpoint is on disk before train() returns (or its write error is raised)
        trained = max(0, cfg.steps - start_step) * self.step_tokens
        return {
            "steps": max(cfg.steps, start_step), "final_train_loss": self.loss, "final_val_loss": val_loss,
            "tokens_seen": self.tokens_seen, "tokens_per_s": trained / train_time if train_time else 0.0,
            "checkpoint_dir": str(ckpt_dir) if ckpt_dir else None, "wall_time_s": time.perf_counter() - self.wall_start,
            "resumed_from": self.resumed_from, "strategy": self.strategy, "world_size": info.world_size,
            "grad_accum": self.grad_accum, "global_batch": self.batches.global_batch, "seq_len": self.seq_len,
            "params": self.n_params, "device": str(info.device), "precision": self.compute.precision,
        }
