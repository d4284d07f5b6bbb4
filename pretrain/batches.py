"""Token batches as a pure function of (seed, step, micro-step, rank): no loader state to save.

Layout. One optimizer step consumes a global batch of N = micro_batch x grad_accum x world_size
sequences with global sample indices g = step * N + s, s in [0, N). Rank `rank` at micro-step
`micro` takes the micro_batch consecutive slots

    s = (micro * world_size + rank) * micro_batch + j,   j in [0, micro_batch).

Every step covers exactly the slots 0..N-1 whatever the split, so a run with world_size W and
accumulation A sees the same sequences (and, with token-weighted loss averaging, the same
gradient) as a run with W' x A' = W x A; a job may even resume on a different number of GPUs
as long as the global batch is unchanged.

Sample g comes from source Mixture(weights, seed).draw(g) and, within it, from row
default_rng([seed, g, 1 + source]).integers(len(source)): independent uniform draws with
replacement. A per-epoch permutation would need to count earlier draws of each source, which a
counter-based layout cannot do cheaply; at the paper's data sizes repeats are rare either way.

Rows are token ids (seq_len,) or, from a continuous tokenizer (pretrain/tokenization.py,
"content": "pixels"), uint8 pixel clips (T, R, R, 3). Pixel batches stay uint8 here (a quarter of
the bytes of floats to copy to the device); `patch_sequences` turns them into the patch sequences
a patch-mode model reads, on whatever device they are on.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from pretrain.data.mixture import Mixture
from pretrain.shards import ShardSet


def _row_shape(shard_set: ShardSet) -> tuple[int, ...]:
    """(seq_len,) for token rows, (T, R, R, 3) for uint8 pixel rows; anything else is an error."""
    shape = tuple(int(n) for n in shard_set.row_shape)
    if len(shape) == 1 or (len(shape) == 4 and shape[-1] == 3 and shard_set.dtype == np.uint8):
        return shape
    raise ValueError(f"{shard_set.directory} holds {shard_set.dtype} rows of shape {shape}: training needs 1-D token "
                     "sequences or uint8 pixel rows (T, R, R, 3)")


def is_pixels(row_shape: Sequence[int]) -> bool:
    """True for pixel rows (T, R, R, 3), False for token rows (seq_len,)."""
    return len(row_shape) == 4


def _stack(rows: list[np.ndarray]) -> torch.Tensor:
    """Token rows as int64 ids (what nn.Embedding takes); pixel rows as they are (uint8)."""
    batch = np.stack(rows)
    return torch.from_numpy(batch if is_pixels(batch.shape[1:]) else batch.astype(np.int64))


def patch_sequences(tokenizer) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 pixel rows (B, T, R, R, 3) -> float patch sequences (B, T*g*g, patch_dim) via a
    continuous tokenizer's `encode` (e.g. PatchTokenizer): frame by frame, each frame's grid in
    raster order, the same order token rows use, so one model layout serves both."""
    if getattr(tokenizer, "discrete", True):
        raise ValueError(f"patch_sequences needs a continuous tokenizer (discrete=False), got {getattr(tokenizer, 'kind', tokenizer)!r}")

    def patchify(rows: torch.Tensor) -> torch.Tensor:
        if rows.ndim != 5:
            raise ValueError(f"expected uint8 pixel rows (B, T, R, R, 3), got shape {tuple(rows.shape)}")
        patches = tokenizer.encode(rows.flatten(0, 1))
        return patches.reshape(rows.shape[0], -1, patches.shape[-1])

    return patchify


def code_sequences(tokenizer) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 pixel rows (B, T, R, R, 3) -> the discrete tokenizer's codes (B, T*g*g), in the order
    `patch_sequences` lays out patches: the targets of a patches-in, codes-out model (patch-dVAE).
    Encoded in fp32 outside any autocast, as offline tokenization does, so the targets are the codes
    `python pretrain/run.py` would have stored; the tokenizer follows the rows to their device."""
    if not getattr(tokenizer, "discrete", False):
        raise ValueError(f"code_sequences needs a discrete tokenizer, got {getattr(tokenizer, 'kind', tokenizer)!r}")
    tokenizer.eval().requires_grad_(False)

    @torch.no_grad()
    def codes(rows: torch.Tensor) -> torch.Tensor:
        if rows.ndim != 5:
            raise ValueError(f"expected uint8 pixel rows (B, T, R, R, 3), got shape {tuple(rows.shape)}")
        if next(tokenizer.parameters()).device != rows.device:
            tokenizer.to(rows.device)
        with torch.autocast(rows.device.type, enabled=False):
            ids = tokenizer.encode(rows.flatten(0, 1))
        return ids.reshape(rows.shape[0], -1).to(rows.device, torch.int64)

    return codes


class TokenBatches:
    """Training micro-batches drawn from weighted shard sets with the layout above."""

    def __init__(self, sets: Sequence[tuple[ShardSet, float]], *, seed: int, micro_batch: int, grad_accum: int, world_size: int = 1):
        if not sets:
            raise ValueError("train_sets is empty: give at least one (ShardSet, weight) pair")
        if micro_batch < 1 or grad_accum < 1 or world_size < 1:
            raise ValueError(f"micro_batch={micro_batch}, grad_accum={grad_accum}, world_size={world_size}: all must be >= 1")
        self.sources = [s for s, _ in sets]
        shapes = {_row_shape(s) for s in self.sources}
        if len(shapes) != 1:
            names = ", ".join(f"{s.directory} {_row_shape(s)}" for s in self.sources)
            raise ValueError(f"train sets have different row shapes: {names}; tokenize them with the same frames, grid and tokenizer")
        self.row_shape = shapes.pop()
        self.pixels = is_pixels(self.row_shape)
        self.mixture = Mixture([w for _, w in sets], seed)
        self.seed = int(seed)
        self.micro_batch, self.grad_accum, self.world_size = micro_batch, grad_accum, world_size
        self.global_batch = micro_batch * grad_accum * world_size

    def sample_index(self, step: int, micro: int, rank: int, j: int = 0) -> int:
        """Global sample index of row j of `rank`'s micro-batch `micro` at optimizer step `step`."""
        return step * self.global_batch + (micro * self.world_size + rank) * self.micro_batch + j

    def sample(self, index: int) -> np.ndarray:
        """The row (tokens or pixels) of global sample `index`."""
        source = self.mixture.draw(index)
        data = self.sources[source]
        row = np.random.default_rng([self.seed, int(index), 1 + source]).integers(len(data))
        return data[int(row)]

    def micro_batch_tokens(self, step: int, micro: int, rank: int) -> torch.Tensor:
        """One forward pass's rows: LongTensor (micro_batch, seq_len), or uint8 (micro_batch, T, R, R, 3) pixels."""
        first = self.sample_index(step, micro, rank)
        return _stack([self.sample(first + j) for j in range(self.micro_batch)])


def validation_batches(val_sets: Sequence[ShardSet], micro_batch: int, batches_per_set: int) -> list[torch.Tensor]:
    """Fixed validation batches: `batches_per_set` batches of evenly spaced rows from each set.

    Evenly spaced (not random) rows make the set identical across runs, resumes and world sizes,
    so validation curves of different runs are comparable point by point.
    """
    if micro_batch < 1 or batches_per_set < 1:
        raise ValueError(f"micro_batch={micro_batch}, val_batches={batches_per_set}: both must be >= 1")
    out = []
    for data in val_sets:
        _row_shape(data)
        wanted = min(len(data), micro_batch * batches_per_set)
        rows = [(i * len(data)) // wanted for i in range(wanted)]
        for start in range(0, wanted, micro_batch):
            out.append(_stack([data[r] for r in rows[start:start + micro_batch]]))
    return out
