"""Run `pretrain.train.train` from a JSON spec: the subprocess/torchrun side of the training tests.

    python tests/pretrain/train_worker.py spec.json          (or under torchrun --nproc_per_node=2)

Also the helpers both test files share. spec: {"out_dir", "model": TotoConfig kwargs, "train": TrainConfig kwargs,
"train_sets": [[dir, weight]], "val_sets": [dir], "step_delay": seconds slept after each logged step (gives a test time to kill
the process mid-run)}. Rank 0 writes the summary to out_dir/summary.json.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported
os.environ.setdefault("OMP_NUM_THREADS", "1")


ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve()
TINY_MODEL = dict(dim=32, n_layers=2, n_heads=2, vocab_size=20, max_seq_len=64, multiple_of=16)
QUICK_TRAIN = dict(micro_batch=4, grad_accum=2, lr=3e-3, warmup_steps=5, precision="fp32", val_every=10, val_batches=2,
                   ckpt_every=10, log_every=1, progress=False)


def write_spec(data: Path, out: Path, path: Path, **train_overrides) -> Path:
    """A worker spec for TINY_MODEL on the shards of `data_fixture` (QUICK_TRAIN + overrides)."""
    spec = {"out_dir": str(out), "model": TINY_MODEL, "train": {**QUICK_TRAIN, **train_overrides},
            "train_sets": [[str(data / "a"), 0.7], [str(data / "b"), 0.3]], "val_sets": [str(data / "val")]}
    path.write_text(json.dumps(spec))
    return path


def worker_env() -> dict:
    """One thread per process: fast on the shared 2-core CI machine and deterministic."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}


def make_data(root: Path) -> Path:
    """Train sources a, b and a validation set val of learnable 34-token rows."""
    make_token_shards(root / "a", 64, 34, seed=0)
    make_token_shards(root / "b", 64, 34, seed=1)
    make_token_shards(root / "val", 16, 34, seed=2, shards=1)
    return root


def run_inline(data: Path, out: Path, model: dict | None = None, frame_tokens: int | None = None, **train_overrides) -> dict:
    """`train` in this process with the same data and settings as a worker spec."""
    from encoder.model import TotoConfig
    from pretrain.shards import ShardSet
    from pretrain.train import TrainConfig, train

    sets = [(ShardSet(data / "a"), 0.7), (ShardSet(data / "b"), 0.3)]
    cfg = TrainConfig(**{**QUICK_TRAIN, **train_overrides})
    return train(TotoConfig(**(model or TINY_MODEL)), sets, [ShardSet(data / "val")], cfg, out, frame_tokens=frame_tokens)


def make_token_shards(directory, rows: int, seq_len: int, codes: int = 16, seed: int = 0, shards: int = 2) -> None:
    """Learnable video-like rows [1, c0, c0+k, c0+2k, ... (mod codes), 2]: two tokens fix the rest."""
    from encoder.tokens import CODE_OFFSET, END, VIDEO_START
    from pretrain.shards import write_shard

    rng = np.random.default_rng(seed)
    start, step = rng.integers(codes, size=(rows, 1)), rng.integers(1, 4, size=(rows, 1))
    body = (start + step * np.arange(seq_len - 2)) % codes + CODE_OFFSET
    data = np.concatenate([np.full((rows, 1), VIDEO_START), body, np.full((rows, 1), END)], axis=1).astype(np.uint16)
    for i, part in enumerate(np.array_split(data, shards)):
        write_shard(directory, f"shard_{i:03d}", part)


def main(spec_path: str) -> None:
    import torch

    torch.set_num_threads(1)
    from encoder.model import TotoConfig
    from pretrain import distributed, metrics, train
    from pretrain.shards import ShardSet

    spec = json.loads(open(spec_path).read())
    if spec.get("step_delay"):
        import time

        log = metrics.MetricsLogger.log

        def slow_log(self, record):
            log(self, record)
            time.sleep(spec["step_delay"])

        metrics.MetricsLogger.log = slow_log
    summary = train.train(
        TotoConfig(**spec["model"]),
        [(ShardSet(d), w) for d, w in spec["train_sets"]],
        [ShardSet(d) for d in spec["val_sets"]],
        train.TrainConfig(**spec["train"]),
        spec["out_dir"],
    )
    summary["gloo_threads_after_teardown"] = distributed.gloo_threads()  # train() left the group: none may be left
    if int(os.environ.get("RANK", "0")) == 0:
        with open(os.path.join(spec["out_dir"], "summary.json"), "w") as f:
            json.dump(summary, f)


if __name__ == "__main__":
    main(sys.argv[1])
