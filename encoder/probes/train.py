"""Feature extraction (once per dataset, every layer in one forward) and probe training on the cache.

Why a cache: the frozen encoder is by far the expensive part (a 16-frame clip is 4,096 tokens),
while a probe head is tiny. So each split goes through the encoder once, `token_features` returns
every requested layer from one forward pass, and every (layer, probe) pair then trains on the
cached tensors for as many epochs as it likes. Two caches per layer:

    pooled   (N, dim) float32: the average of all visual tokens, for the linear probe
    tokens   (N, n, dim) float16: for the attention probes, average-pooled to a token_grid^2
             grid (and token_frames time steps for video). All 256 tokens of 1,797 digits
             would be 177 MB a layer for the nano model (706 MB for base); the 2x2-pooled 8x8
             grid keeps the spatial layout the attention pool weighs, at a quarter of that.
             token_grid=null / token_frames=null keep every token (the paper's setting).

With `store`, features stream to per-layer files as they are made and come back memory-mapped
(encoder/probes/store.py): RAM stays flat at ImageNet scale, and a rerun with other probe
settings reuses them (keyed by a fingerprint of encoder, data and settings; the embedded default
writes 277 MB for the nano model's 4 layers).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from encoder.probes.data import Split
from encoder.probes.heads import TOKEN_PROBES, make_probe
from encoder.probes.store import Features, FeatureWriter, MemorySink
from toto_robot.media.errors import BadMediaError, SkipReport


class _Samples(Dataset):
    """Split samples for a DataLoader; a bad file becomes (index, None, (path, reason))."""

    def __init__(self, split: Split, seed: int):
        self.split, self.seed = split, seed

    def __len__(self):
        return len(self.split)

    def __getitem__(self, i):
        try:
            return i, self.split.sample(i, self.seed), None
        except BadMediaError as error:
            return i, None, (str(error.path), error.reason)


def pool_tokens(tokens: torch.Tensor, frames: int, grid: int, token_grid: int | None, token_frames: int | None) -> torch.Tensor:
    """(B, frames*grid*grid, dim) -> (B, t*g*g, dim), averaged to t <= token_frames, g <= token_grid."""
    b, n, d = tokens.shape
    if n != frames * grid * grid:
        raise ValueError(f"the encoder returned {n} tokens for {frames} frame(s) of {grid}x{grid}")
    t, g = min(frames, token_frames or frames), min(grid, token_grid or grid)
    if (t, g) == (frames, grid):
        return tokens
    x = tokens.reshape(b, frames, grid, grid, d).permute(0, 4, 1, 2, 3)
    return F.adaptive_avg_pool3d(x.float(), (t, g, g)).flatten(2).transpose(1, 2)


@torch.no_grad()
def extract_features(encoder, split: Split, layers: list[int], frames: int, *, want_tokens: bool = True,
                     token_grid: int | None = 8, token_frames: int | None = 4, batch_frames: int = 64,
                     seed: int = 0, workers: int = 0, device: str = "cpu", desc: str = "features",
                     progress: bool = True, store: Path | None = None, key: str = "") -> Features:
    """Run every sample of `split` through the frozen encoder once; bad files are skipped and counted.

    With `store` (a directory) each batch is appended to disk and the result is memory-mapped
    from there; without it, features are kept in RAM (small datasets, tests)."""
    start = time.perf_counter()
    sink = FeatureWriter(store) if store is not None else MemorySink()
    batch = max(1, batch_frames // frames)
    loader = DataLoader(_Samples(split, seed), batch_size=batch, num_workers=workers, collate_fn=list)
    skipped = SkipReport()
    for samples in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        good = [(i, x) for i, x, bad in samples if bad is None]
        for _, _, bad in samples:
            if bad is not None:
                skipped.add(*bad)
        if not good:
            continue
        x = torch.from_numpy(np.stack([x for _, x in good])).to(device)
        feats = encoder.token_features(x, layers=layers)
        sink.append("labels", "labels", split.labels[[i for i, _ in good]])
        for layer in layers:
            f = feats[layer].float()
            sink.append(f"pooled_{layer}", "pooled", f.mean(1).cpu().numpy())
            if want_tokens:
                grid = pool_tokens(f, frames, encoder.grid, token_grid, token_frames)
                sink.append(f"tokens_{layer}", "tokens", grid.half().cpu().numpy())
    if "labels" not in sink.shapes:
        raise ValueError(f"{desc}: none of the {len(split)} samples could be read ({skipped.as_dict()})")
    return sink.finish(key, skipped, time.perf_counter() - start)


# --- feature cache on disk --------------------------------------------------------------------------

def fingerprint(**parts) -> str:
    """A short hash of everything that determines the features (JSON of `parts`)."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encoder_stamp(path: str | os.PathLike) -> dict:
    """Identity of an encoder directory's weight files (path, size, mtime): changes when re-exported."""
    files = sorted(Path(path).glob("*.safetensors"))
    return {"path": str(Path(path).resolve()), "files": [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]}


# --- probe training ---------------------------------------------------------------------------------

@dataclass
class ProbeResult:
    accuracy: float  # validation top-1
    train_accuracy: float
    losses: list[float]  # mean training loss per epoch
    seconds: float


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@torch.no_grad()
def accuracy(head: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    head.eval()
    device = next(head.parameters()).device
    correct = sum(int((head(x[i:i + batch].to(device).float()).argmax(-1).cpu() == y[i:i + batch]).sum())
                  for i in range(0, len(y), batch))
    return correct / max(1, len(y))


def train_probe(kind: str, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
                n_classes: int, settings, seed: int = 0, device: str | torch.device = "cpu") -> ProbeResult:
    """Train one head of type `kind` on cached features (kept on the CPU, batches moved to `device`);
    `settings` is a TrainSettings."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    s = settings
    head = make_probe(kind, x_train.shape[-1], n_classes, s.attention_heads, s.mlp_hidden, s.dropout).to(device)
    lr = s.linear_lr if kind == "linear" and s.linear_lr is not None else s.lr
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, betas=tuple(s.betas), weight_decay=s.weight_decay)
    n, batch = len(y_train), min(s.batch_size, len(y_train))
    steps_per_epoch = max(1, n // batch)  # drop the ragged last batch: BatchNorm needs > 1 sample
    total, warmup = s.epochs * steps_per_epoch, s.warmup_epochs * steps_per_epoch
    generator, losses, step = torch.Generator().manual_seed(seed), [], 0
    for _ in range(s.epochs):
        head.train()
        order, epoch_loss = torch.randperm(n, generator=generator), 0.0
        for b in range(steps_per_epoch):
            idx = order[b * batch:(b + 1) * batch]
            for group in optimizer.param_groups:
                group["lr"] = lr * _lr_factor(step, total, warmup)
            loss = F.cross_entropy(head(x_train[idx].to(device).float()), y_train[idx].to(device), label_smoothing=s.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch_loss, step = epoch_loss + loss.item(), step + 1
        losses.append(epoch_loss / steps_per_epoch)
    return ProbeResult(accuracy(head, x_val, y_val), accuracy(head, x_train, y_train), losses, time.perf_counter() - start)


def train_all(train: Features, val: Features, layers: list[int], probes: list[str], n_classes: int, settings,
              seed: int = 0, progress: bool = True, desc: str = "probes", device: str | torch.device = "cpu",
              ) -> dict[str, dict[int, ProbeResult]]:
    """Every probe type on every layer's cache: {probe: {layer: ProbeResult}}."""
    results: dict[str, dict[int, ProbeResult]] = {p: {} for p in probes}
    jobs = [(p, k) for p in probes for k in layers]
    for probe, layer in tqdm(jobs, desc=desc, unit="probe", disable=not progress, leave=False):
        source = "tokens" if probe in TOKEN_PROBES else "pooled"
        x_train, x_val = getattr(train, source)[layer], getattr(val, source)[layer]
        results[probe][layer] = train_probe(probe, x_train, train.labels, x_val, val.labels, n_classes, settings, seed, device)
    return results
