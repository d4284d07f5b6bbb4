"""Train our FSQ tokenizer (encoder/tokenizers/fsq.py) on uint8 frames; one resumable stage.

The paper tokenizes with a pre-trained dVAE; no such weights ship with any package, so the
default pipeline trains its own small FSQ tokenizer first (minutes on a CPU). The loop is plain
AdamW on L1 + L2 pixel losses (no LPIPS: it needs torchvision) plus a small batch code-entropy
bonus that keeps codes from going unused (FSQ.batch_entropy), warm-up + cosine.
At the end it measures, on held-out frames, reconstruction PSNR, codebook usage and perplexity
(diagnostics, not targets: on a narrow corpus, high usage means codes that hash nuisance detail,
issue 24), and, through `report`, token stability (pretrain/token_stability.py), and writes into `out_dir`:

    tokenizer.safetensors + tokenizer.json   weights, FSQ config, training config and metrics
    reconstructions.png                      held-out originals (top) over reconstructions (bottom), then
                                             4x crops around the cube over theirs (with `report`)
    metrics.json                             the metrics alone

Re-running with the same config and data on a finished `out_dir` skips training (stage-level
resume: the tokenizer is cheap to retrain, so there is no mid-run checkpoint).

    python pretrain/run.py stage=tokenizer     # on the configured corpus (pipeline.prepare_tokenizer)
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from encoder.tokenizers import TOKENIZER_NAME, save_tokenizer
from encoder.tokenizers.fsq import FSQConfig, FSQTokenizer
from encoder.tokenizers.stability import frame_psnr
from pretrain.schedule import lr_at
from toto_robot.checkpoint import CheckpointError, read_meta
from toto_robot.compute import PRECISIONS, resolve
from toto_robot.io import atomic_write

log = logging.getLogger(__name__)


@dataclass
class TokenizerTrainConfig:
    # the class defaults are the wide recipe, tokenizer=fsq; the run's default is pretrain.config.stable_fsq_recipe
    steps: int = 500  # 128px: 40 s AMX bf16, 115 s AVX2 fp32 (tokenizer=fsq_stable: 1,000, +1.2 dB PSNR)
    batch_size: int = 16
    lr: float = 2e-3  # peak; linear warm-up then cosine to lr * min_lr_ratio
    min_lr_ratio: float = 0.05
    warmup_steps: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    l1_weight: float = 1.0
    l2_weight: float = 1.0
    # weight of (1 - batch code entropy / log K): spreads codes over the codebook, and also splits codes on
    # nuisance context, so still patches flip (docs/results.md, section 1); tokenizer=fsq_stable sets 0, as
    # the FSQ paper has no such term
    entropy_weight: float = 0.3
    entropy_temperature: float = 0.5
    flip: bool = True  # random horizontal flips: free augmentation
    # probability of a random permutation of a frame's RGB channels: saturated colours (the red
    # cube) are rare in the corpus, so without it the decoder greyed them out (docs/results.md)
    permute_colours: float = 0.0
    precision: str = "auto"  # auto | fp32 | bf16 autocast; auto: bf16 where native (toto_robot/compute.py)
    channels_last: bool = True
    seed: int = 0
    threads: int | None = None  # torch threads; None leaves torch's default
    eval_batch_size: int = 64
    progress: bool = True
    model: FSQConfig = field(default_factory=FSQConfig)

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = FSQConfig(**self.model)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"steps={self.steps}, batch_size={self.batch_size}: need steps >= 0 and batch_size >= 1")

    def to_dict(self) -> dict:
        return {**asdict(self), "model": self.model.to_dict()}

    @classmethod
    def coerce(cls, cfg) -> "TokenizerTrainConfig":
        """Accept the dataclass, a plain dict or an OmegaConf DictConfig of it."""
        if cfg is None or isinstance(cfg, cls):
            return cfg or cls()
        values = dict(cfg)
        if "model" in values and not isinstance(values["model"], FSQConfig):
            values["model"] = dict(values["model"])
        return cls(**values)


# settings that do not change the trained weights: changing them does not redo a finished run
_NOT_IN_IDENTITY = ("progress", "threads", "eval_batch_size")


def _check_frames(frames: np.ndarray, what: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"{what} must be a non-empty uint8 array (N, H, W, 3), got {frames.dtype} {frames.shape}")
    return frames


def permute_channels(x: torch.Tensor, rng: np.random.Generator, probability: float) -> torch.Tensor:
    """(N, 3, H, W): each frame's RGB channels in a random order with `probability` (else as they are)."""
    orders = np.stack([rng.permutation(3) if rng.random() < probability else np.arange(3) for _ in range(len(x))])
    index = torch.from_numpy(orders).to(x.device)[:, :, None, None].expand(-1, -1, *x.shape[2:])
    return torch.gather(x, 1, index)


def fingerprint(frames: np.ndarray) -> str:
    """Cheap identity of a frame array (shape + a strided sample of its bytes) for the resume check."""
    h = hashlib.sha1(str(frames.shape).encode())
    h.update(np.ascontiguousarray(frames.reshape(len(frames), -1)[:, ::997]).tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def evaluate(tokenizer: FSQTokenizer, frames: np.ndarray, batch_size: int = 64) -> tuple[dict, np.ndarray]:
    """PSNR (dB, mean over frames, through the uint8 encode/decode path) and codebook usage."""
    tokenizer.eval()
    psnrs, counts, recons = [], torch.zeros(tokenizer.codebook_size, dtype=torch.int64), []
    for i in range(0, len(frames), batch_size):
        batch = torch.from_numpy(frames[i:i + batch_size])
        codes = tokenizer.encode(batch).cpu()  # encode moves the frames to the tokenizer's device
        recon = tokenizer.decode(codes).cpu()
        psnrs.append(frame_psnr(batch, recon))
        counts += torch.bincount(codes.reshape(-1), minlength=tokenizer.codebook_size)
        if i == 0:
            recons = recon[:8].numpy()
    tokens = int(counts.sum())
    p = counts[counts > 0].double() / tokens
    metrics = {
        "psnr_db": float(torch.cat(psnrs).mean()),
        "codebook_usage": float((counts > 0).sum()) / tokenizer.codebook_size,
        # with fewer held-out tokens than codes, full usage is impossible: report the ceiling too
        "codebook_usage_bound": min(1.0, tokens / tokenizer.codebook_size),
        "code_perplexity": float(torch.exp(-(p * p.log()).sum())),
        "eval_frames": len(frames),
        "eval_tokens": tokens,
    }
    return metrics, recons


def save_reconstructions(path: Path, originals: np.ndarray, recons: np.ndarray,
                         crops: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """One PNG: originals in the top row, their reconstructions below; `crops` (originals,
    reconstructions), e.g. enlarged crops around the cube, add a row pair beneath."""
    from PIL import Image

    n = min(len(originals), len(recons))
    grid = np.concatenate([np.concatenate(list(originals[:n]), axis=1), np.concatenate(list(recons[:n]), axis=1)], axis=0)
    if crops is not None and len(crops[0]):
        rows = np.concatenate([np.concatenate(list(crops[0]), axis=1), np.concatenate(list(crops[1]), axis=1)], axis=0)
        width = max(grid.shape[1], rows.shape[1])
        grid = np.concatenate([np.pad(part, ((0, 0), (0, width - part.shape[1]), (0, 0))) for part in (grid, rows)], axis=0)
    with atomic_write(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")


def finished_run(out_dir: Path, identity: dict) -> dict | None:
    """The saved metrics if `out_dir` holds a finished tokenizer trained with the same config and data."""
    try:
        meta = read_meta(out_dir, TOKENIZER_NAME, kind="fsq_tokenizer")
    except CheckpointError:
        return None
    if meta.get("train") != identity or not (out_dir / "metrics.json").is_file():
        return None
    return json.loads((out_dir / "metrics.json").read_text())


def train_tokenizer(train_frames: np.ndarray, val_frames: np.ndarray, cfg: TokenizerTrainConfig | None = None,
                    out_dir: str | os.PathLike = "runs/tokenizer", device: str = "auto",
                    report: Callable[[FSQTokenizer], dict] | None = None) -> dict:
    """Train an FSQ tokenizer, evaluate it on `val_frames`, write it to `out_dir`; return the metrics.

    Frames are uint8 (N, H, W, 3) with H == W a multiple of the tokenizer's downsample (128 in the
    paper's recipe). If `out_dir` already has a finished tokenizer for this config and data, nothing
    is trained and the saved metrics come back with "skipped": True. `device`: auto|cpu|cuda|cuda:N
    (toto_robot/compute.py); the precision is `cfg.precision`, resolved for that device.
    `report(tokenizer)` adds figures measured on the trained tokenizer under metrics["stability"]
    (pretrain/token_stability.py: the pipeline's token-stability report); image crops it returns
    under "crops" (originals, reconstructions) are drawn in reconstructions.png, not saved as figures.
    """
    cfg = TokenizerTrainConfig.coerce(cfg)
    train_frames, val_frames = _check_frames(train_frames, "train_frames"), _check_frames(val_frames, "val_frames")
    out_dir = Path(out_dir)
    settings = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_IN_IDENTITY}
    identity = json.loads(json.dumps({"config": settings, "train_data": fingerprint(train_frames),
                                      "val_data": fingerprint(val_frames)}))
    done = finished_run(out_dir, identity)
    if done is not None:
        log.info("%s already holds a finished tokenizer with this config and data: skipping training", out_dir)
        return {**done, "skipped": True}

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    compute = resolve(device, cfg.precision).announce("tokenizer training")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    tokenizer = FSQTokenizer(cfg.model)
    tokenizer.check_frames(torch.from_numpy(train_frames[:1]))
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    tokenizer = tokenizer.to(compute.device, memory_format=memory_format)
    init_metrics, _ = evaluate(tokenizer, val_frames[:64], cfg.eval_batch_size)

    opt = torch.optim.AdamW(tokenizer.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    tokenizer.train()
    start = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="tokenizer", disable=not cfg.progress, dynamic_ncols=True)
    for step in bar:
        idx = rng.integers(0, len(train_frames), cfg.batch_size)
        x = torch.from_numpy(train_frames[idx]).to(compute.device).permute(0, 3, 1, 2).float().div_(255)
        if cfg.flip:
            flip = torch.from_numpy(rng.random(cfg.batch_size) < 0.5)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if cfg.permute_colours:
            x = permute_channels(x, rng, cfg.permute_colours)
        x = x.contiguous(memory_format=memory_format)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, lr=cfg.lr, warmup_steps=cfg.warmup_steps, total_steps=cfg.steps, min_lr_ratio=cfg.min_lr_ratio)
        with compute.autocast():
            recon, z = tokenizer(x)
        err = recon.float() - x
        mse = err.pow(2).mean()
        loss = cfg.l1_weight * err.abs().mean() + cfg.l2_weight * mse
        if cfg.entropy_weight:
            entropy = tokenizer.quantizer.batch_entropy(z, cfg.entropy_temperature)
            loss = loss + cfg.entropy_weight * (1 - entropy / math.log(tokenizer.codebook_size))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(tokenizer.parameters(), cfg.grad_clip)
        opt.step()
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", psnr=f"{-10 * math.log10(max(mse.item(), 1e-10)):.1f}")
    bar.close()
    train_seconds = time.perf_counter() - start

    tokenizer = tokenizer.to(memory_format=torch.contiguous_format)
    metrics, recons = evaluate(tokenizer, val_frames, cfg.eval_batch_size)
    metrics.update(psnr_init_db=init_metrics["psnr_db"], train_seconds=round(train_seconds, 1), steps=cfg.steps,
                   train_frames=len(train_frames), frames_seen=cfg.steps * cfg.batch_size)
    crops = None
    if report is not None:
        tokenizer.eval()
        metrics["stability"] = report(tokenizer)
        crops = metrics["stability"].pop("crops", None)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_reconstructions(out_dir / "reconstructions.png", val_frames[:len(recons)], recons, crops)
    with atomic_write(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=1))
    save_tokenizer(tokenizer, out_dir, train=identity, metrics=metrics)  # JSON last: marks the stage finished
    return {**metrics, "skipped": False}
