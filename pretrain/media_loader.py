"""Decoding for tokenization in worker processes, one file an item, in plan order.

Why: decoding and resizing (PyAV, PIL) run in Python on one core per process; under torchrun a
rank has one thread, so a GPU tokenizer would wait on them. A torch DataLoader decodes the next
files in `workers` processes while the main process encodes. Each file's randomness (clip
starts, crops) comes from its own seed (`Chunk.seed` with the file's position), so the
tokens do not depend on the number of workers or ranks. Images are only decoded and resized
here; their packing into sequences and their crops are drawn per chunk by the caller.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from toto_robot.compute import usable_cores
from toto_robot.media.clips import ClipSpec, sample_clips
from toto_robot.media.images import load_resized
from toto_robot.media.errors import BadMediaError

def default_workers(device_type: str = "cpu", local_world_size: int = 1) -> int:
    """Decode workers per process. With the tokenizer on a GPU: the cores this process may use,
    shared by the ranks of a node, less the one that feeds the GPU (at most 8). With the tokenizer on
    the CPU: 0, because the encoder's threads already use every core and workers would only take
    them away (measured on 2 cores: 321 frames/s without a worker, 277 with one)."""
    if device_type == "cpu":
        return 0
    return max(0, min(8, usable_cores() // max(1, local_world_size) - 1))


class ChunkFiles(torch.utils.data.Dataset):
    """Item k: (chunk index in `chunks`, file position, decoded media or the BadMediaError).

    Videos give uint8 clips (n, T, R, R, 3); images a uint8 (H, W, 3) resized image."""

    def __init__(self, chunks: Sequence, cfg, threads: bool):
        self.chunks, self.cfg, self.threads = chunks, cfg, threads
        self.items = [(i, j) for i, chunk in enumerate(chunks) for j in range(len(chunk.files))]
        self.spec = ClipSpec(cfg.frames, cfg.stride, cfg.resolution)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int):
        i, j = self.items[k]
        chunk = self.chunks[i]
        path = chunk.files[j]
        try:
            if chunk.source.kind == "video":
                rng = np.random.default_rng(chunk.seed(self.cfg.seed, j))
                media = sample_clips(path, chunk.source.clips_per_video or self.cfg.clips_per_video, self.spec, rng,
                                     per_minute=chunk.source.clips_per_minute, threads=self.threads)
            else:
                media = load_resized(path, self.cfg.resolution)
        except BadMediaError as error:
            media = error
        return i, j, media


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # the workers decode; the main process keeps the cores for encoding


def media_items(chunks: Sequence, cfg, workers: int) -> Iterator[tuple[int, int, object]]:
    """(chunk index, file position, media or BadMediaError) for every file of `chunks`, in order."""
    dataset = ChunkFiles(chunks, cfg, threads=workers == 0)
    if workers == 0 or len(dataset) == 0:
        yield from (dataset[k] for k in range(len(dataset)))
        return
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                                         prefetch_factor=4, worker_init_fn=_one_thread, collate_fn=lambda item: item)
    yield from loader
