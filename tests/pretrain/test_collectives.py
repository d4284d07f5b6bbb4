"""Multi-GPU correctness without a GPU: collectives on the rank's device, the group's timeout,
stages joined by file markers, tokenization balanced by cost.

NCCL has no CPU path: handed a CPU tensor it fails with "No backend type associated with device
type cpu" (reproduced with init_process_group("cuda:gloo") on a CPU machine). This machine has
no second real device, so the stand-in is the meta device: the rank "runs" on meta, and a stand-in
all_reduce fails as NCCL would on a CPU tensor and stops with `Delivered` on a device tensor (a
meta tensor holds no values to reduce). Real 2-process gloo runs are in test_distributed.py and
test_run.py.
"""
from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from encoder.model import Toto, TotoConfig
from pretrain import distributed, markers
from pretrain.data.sources import SourceConfig
from pretrain.tokenization import Chunk, TokenizeConfig, assign_ranks, chunk_cost
from pretrain.train import Objective, TrainConfig, _global_step, evaluate
from tests.pretrain.train_worker import TINY_MODEL
from toto_robot.compute import resolve

META = torch.device("meta")


class Delivered(Exception):
    """The stand-in backend accepted a tensor on the rank's device."""


class NcclStandIn:
    """torch.distributed.all_reduce as NCCL behaves on a rank whose device is `device`."""

    def __init__(self, device: torch.device):
        self.device, self.seen = device, []

    def all_reduce(self, tensor, op=None, group=None, async_op=False):
        self.seen.append(tensor.device)
        if tensor.device != self.device:
            raise RuntimeError(f"No backend type associated with device type {tensor.device.type}")
        raise Delivered


@pytest.fixture
def nccl(monkeypatch) -> NcclStandIn:
    stand_in = NcclStandIn(META)
    monkeypatch.setattr(torch.distributed, "all_reduce", stand_in.all_reduce)
    return stand_in


RANK0_OF_2 = distributed.DistInfo(rank=0, world_size=2, device=META)


def test_sum_over_ranks_reduces_on_the_ranks_device(nccl):
    for values in ([3.0, 4.0], torch.tensor([1.0, 2.0])):  # numbers, or a tensor made on the host
        with pytest.raises(Delivered):
            distributed.sum_over_ranks(values, RANK0_OF_2)
    assert nccl.seen == [META, META]


def test_one_process_sums_without_a_collective(nccl):
    assert distributed.sum_over_ranks([3, 4.5], distributed.DistInfo()) == [3.0, 4.5]
    assert nccl.seen == []


def tiny_meta_model() -> Toto:
    torch.manual_seed(0)
    return Toto(TotoConfig(**TINY_MODEL)).to(META)


def rows(n: int = 2) -> torch.Tensor:
    return torch.randint(3, TINY_MODEL["vocab_size"], (n, 34))


def test_training_step_reduces_its_token_count_and_loss_on_the_device(nccl):
    model = tiny_meta_model()
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(Delivered):
        _global_step(model, model, model, optimizer, [rows(), rows()], TrainConfig(precision="fp32"), "single",
                     RANK0_OF_2, Objective(), resolve("cpu", "fp32"))
    assert nccl.seen == [META]


class LinearObjective(Objective):
    """A loss meta tensors can run (the fused LM head asks autocast about the device, which meta is not)."""

    def loss(self, model, inputs):
        return model(inputs.float()).square().mean()


def test_validation_reduces_its_totals_on_the_device(nccl):
    model = torch.nn.Linear(34, 1).to(META)
    with pytest.raises(Delivered):
        evaluate(model, [rows(), rows()], RANK0_OF_2, resolve("cpu", "fp32"), pad_ranks=False, objective=LinearObjective())
    assert nccl.seen == [META]


def test_the_group_gets_the_configured_timeout_and_a_backend_for_the_device(monkeypatch):
    calls = {}
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend, **kw: calls.update(backend=backend, **kw))
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setitem(os.environ, "WORLD_SIZE", "2")
    monkeypatch.setitem(os.environ, "LOCAL_RANK", "1")
    monkeypatch.setitem(os.environ, "MASTER_ADDR", "127.0.0.1")
    info = distributed.setup("cpu", timeout_minutes=90)
    assert calls == {"backend": "gloo", "timeout": timedelta(minutes=90), "device_id": None}
    assert (info.rank, info.world_size, info.device, info.owns_group) == (1, 2, torch.device("cpu"), True)
    with pytest.raises(ValueError, match="dist_timeout_minutes"):
        distributed.setup("cpu", timeout_minutes=0)


def test_a_marker_counts_only_for_its_own_launch(tmp_path):
    path = tmp_path / markers.MARKERS_DIR / "prepared"
    markers.mark(path, "old-launch")
    assert not markers.is_marked(path, "this-launch") and markers.is_marked(path, "old-launch")
    threading.Timer(0.3, markers.mark, (path, "this-launch")).start()
    start = time.monotonic()
    waited = markers.wait_for(path, "this-launch", "a test", poll_s=0.05)
    assert 0.25 <= waited <= time.monotonic() - start + 1e-3 and markers.is_marked(path, "this-launch")


def plan(video_chunks: int, image_chunks: int) -> list[Chunk]:
    videos = SourceConfig("clips", "/data/clips", "video", 1.0)
    images = SourceConfig("photos", "/data/photos", "image", 1.0)
    chunks = [Chunk(i, videos, "train", i, tuple(Path(f"v{i}_{j}.mp4") for j in range(64))) for i in range(video_chunks)]
    chunks += [Chunk(video_chunks + i, images, "train", i, tuple(Path(f"p{i}_{j}.jpg") for j in range(1024)))
               for i in range(image_chunks)]
    return chunks


def test_tokenization_shares_are_balanced_by_cost():
    # 4 video chunks of 64 videos x 4 clips x 16 frames (4,096 frames each), 12 chunks of 1,024 images.
    cfg, chunks = TokenizeConfig(), plan(4, 12)
    for world in (2, 3, 4):
        ranks = assign_ranks(chunks, cfg, world)
        loads = [sum(chunk_cost(c, cfg) for c, r in zip(chunks, ranks) if r == rank) for rank in range(world)]
        assert sum(loads) == 4 * 4096 + 12 * 1024 and max(loads) - min(loads) <= 1024
        assert assign_ranks(chunks, cfg, world) == ranks  # deterministic: every rank computes the same deal
    # dealt by plan index (chunk i to rank i % 3), rank 0 would get two video chunks: 12,288 frames against 8,192
    ranks = assign_ranks(chunks, cfg, 3)
    busiest = max(sum(chunk_cost(c, cfg) for c, r in zip(chunks, ranks) if r == rank) for rank in range(3))
    by_index = max(sum(chunk_cost(c, cfg) for c in chunks if c.index % 3 == rank) for rank in range(3))
    assert (busiest, by_index) == (10240, 12288)
