"""Behaviour cloning of real-robot demos on frozen Toto features (MVP's real protocol: policies/bc.py).

    python real/train_bc.py data=runs/rpt/demos.hdf5                        # encoder runs/pretrain/encoder, mid layer
    python real/train_bc.py data=runs/real/demos                            # the recorder node's episode files
    python real/train_bc.py data=demos.hdf5 encoder.path=... encoder.pool=grid4 epochs=200 out=runs/real_bc_grid4
    python real/train_bc.py data=demos.hdf5 encoder.kind=mae out=runs/real_bc_mae      # the MAE baseline (Table 11)
    python real/train_bc.py --help                                         # every option (TrainBCConfig)

`data` is a robomimic-schema HDF5 of real demos (python -m real.rpt_import), or a directory of the
demo recorder's episode files (episode_*.hdf5, real/nodes/recorder.py): each is checked, then they are
merged (in name order) into `out`/episodes.hdf5, re-merged only when the episode files change.
MVP's real protocol: joint deltas + gripper, MSE, AdamW lr 1e-3 wd 0.01, cosine, batch 128. The
learning is policies.fit_bc; this script owns the real side: the demo files, their layout
(real/demo_layout.py: deltas from joint positions, the contract saved with the policy) and the split.
Writes to `out`: model.safetensors + model.json (the policy: `policies.Policy.from_pretrained(out)`,
deployed by the policy node through real/adapter.py),
metrics.jsonl (train loss and validation MSE every `val_every` epochs, row 0 = untrained),
loss_curve.png, and features.npz/.json (the frozen features, reused by a rerun on the same data and
encoder: only the small MLP fit is repeated). Every file is written atomically and the policy
last, so an interrupted run leaves the previous policy whole.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (docs/design.md section 10)

import json  # noqa: E402
from dataclasses import asdict, dataclass, field, replace  # noqa: E402

import hydra  # noqa: E402
from hydra.core.config_store import ConfigStore  # noqa: E402

from encoder.pooling import PAPER_POOL  # noqa: E402
from policies.configuration import EncoderSpec  # noqa: E402
from toto_robot.cli import bad_input_exits, conf_dir, hydra_entry, settings  # noqa: E402
from toto_robot.lock import run_lock  # noqa: E402
from policies.demos import cached_demo_buffer  # noqa: E402
from toto_robot.io import atomic_write  # noqa: E402

IMPORT_HINT = "import demos with python -m real.rpt_import <episodes dir> <demos.hdf5>"
RECORD_HINT = "record demos with the recorder node (ros2 run real recorder_node) or pass a demo file"


@dataclass
class TrainBCConfig:
    data: str = ""  # robomimic-schema HDF5 of real demos, or a directory of recorder episode_*.hdf5 files
    out: str = "runs/real_bc"
    # policies.EncoderSpec; real BC keeps MVP's protocol (avg) until a real-robot study says otherwise (docs/design.md 6)
    encoder: EncoderSpec = field(default_factory=lambda: EncoderSpec(pool=PAPER_POOL))
    epochs: int = 100
    batch_size: int = 128  # MVP's real BC
    lr: float = 1e-3  # AdamW, cosine decay to 0 over all epochs
    weight_decay: float = 0.01
    val_fraction: float = 0.1  # share of episodes held out (at least one when there are two)
    val_every: int = 5  # epochs between validation rows
    successful_only: bool = True  # skip demos marked failed
    seed: int = 0
    progress: bool = True


ConfigStore.instance().store(name="train_bc_schema", node=TrainBCConfig)


def load_inputs(cfg: TrainBCConfig):
    """(demo path, layout, lengths of the kept demos, feature provider); every bad input is one ValueError line."""
    from policies import make_features  # (lazy: gymnasium)

    if not cfg.data:
        raise ValueError(f"pass data=<demos.hdf5 or a directory of recorded episodes> ({IMPORT_HINT})")
    if min(cfg.epochs, cfg.batch_size, cfg.val_every) < 1 or not 0 <= cfg.val_fraction < 1:
        raise ValueError("epochs, batch_size and val_every must be >= 1 and val_fraction in [0, 1)")
    data = Path(cfg.data).expanduser()
    if data.is_dir():
        data = merge_episodes(data, Path(cfg.out))
    if not data.is_file():
        raise ValueError(f"data={cfg.data}: no such file or directory ({IMPORT_HINT})")
    layout, lengths, success = _read_layout(data)
    kept = [n for n, ok in zip(lengths, success) if ok or not cfg.successful_only]
    if not kept:
        raise ValueError(f"data={cfg.data}: no {'successful ' if cfg.successful_only else ''}demos ({len(lengths)} in the file)")
    if cfg.encoder.kind == "state":
        raise ValueError("encoder=state: a real robot has no privileged state; use toto, mae, random or random_trunk")
    provider = make_features(cfg.encoder)
    if provider.encoder.resolution != layout.resolution:
        raise ValueError(f"data={cfg.data} holds {layout.resolution} px frames, the encoder reads {provider.encoder.resolution} px: "
                         f"re-import with --resolution {provider.encoder.resolution}")
    return data, layout, kept, provider


def _read_layout(path: Path):
    from real.demo_layout import read_layout  # (lazy: PIL)

    try:
        return read_layout(path)
    except OSError as error:
        raise ValueError(f"data={path} is not a readable HDF5 file ({str(error).splitlines()[0]})") from None


def merge_episodes(directory: Path, out: Path) -> Path:
    """The recorder's episode files in `directory` -> one demo file, out/episodes.hdf5. Each file is checked
    first (a bad one is named in one line). Merged again only when the files change, since the cached
    features are keyed on the merged file's identity."""
    from toto_robot.demos import merge_demo_files  # (lazy: h5py)

    files = sorted(directory.glob("episode_*.hdf5"))
    if not files:
        raise ValueError(f"data={directory}: no episode_*.hdf5 files in the directory ({RECORD_HINT})")
    for path in files:
        _read_layout(path)
    merged, key_file = out / "episodes.hdf5", out / "episodes.json"
    key = {"dir": str(directory.resolve()), "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]}
    if merged.is_file() and key_file.is_file() and json.loads(key_file.read_text()) == key:
        return merged
    key_file.unlink(missing_ok=True)  # the key goes stale first, then the file changes
    merge_demo_files(files, merged)
    with atomic_write(key_file) as tmp:
        tmp.write_text(json.dumps(key))
    return merged


def train(cfg: TrainBCConfig) -> dict:
    """Train the policy into cfg.out; returns a summary."""
    import numpy as np
    from tqdm import tqdm

    from policies import PolicyConfig  # (lazy: gymnasium)
    from policies.bc import fit_bc, split_episodes  # (lazy: gymnasium)
    from real.demo_layout import NUM_JOINTS, episode_rows  # (lazy: PIL)

    data, layout, lengths, provider = load_inputs(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = cached_demo_buffer(data, provider, cfg.encoder, successful_only=cfg.successful_only, cache=out / "features").arrays()
    bounds = np.cumsum([0, *lengths])
    if bounds[-1] != len(rows["actions"]):  # cannot happen unless the cache was edited by hand
        raise ValueError(f"{out}/features.npz holds {len(rows['actions'])} rows, {data} {bounds[-1]}: delete features.*")
    episodes = [episode_rows(*(rows[k][a:b] for k in ("features", "proprio", "actions")), layout)
                for a, b in zip(bounds[:-1], bounds[1:])]
    train_ids, val_ids = split_episodes(len(episodes), cfg.val_fraction, cfg.seed)
    if sum(len(episodes[i]["actions"]) for i in train_ids) == 0:
        raise ValueError(f"data={cfg.data}: the training episodes hold no samples with an action")
    bar = tqdm(total=cfg.epochs, desc="bc", unit="epoch", disable=not cfg.progress)

    def on_row(row: dict) -> None:
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", val="-" if row["val_mse"] is None else f"{row['val_mse']:.4f}")
        bar.update(row["epoch"] - bar.n)

    observation, action = layout.contract(uses_gripper=rows["proprio"].shape[1] > NUM_JOINTS)
    spec = replace(cfg.encoder, path=str(Path(cfg.encoder.path).expanduser().resolve()))
    # linear output, proprio and actions standardized: deltas of ~0.01 rad next to a 0/1 gripper (policies/bc.py)
    template = PolicyConfig(encoder=spec, bound="clip", normalize=("features", "proprio", "actions"), observation=observation,
                            action=action, resolution=provider.encoder.resolution)
    try:
        policy, stats = fit_bc(episodes, train_ids, val_ids, template=template, epochs=cfg.epochs, batch_size=cfg.batch_size,
                               lr=cfg.lr, weight_decay=cfg.weight_decay, val_every=cfg.val_every, seed=cfg.seed,
                               features=provider, callback=on_row)
    finally:
        bar.close()
    write_metrics(out, stats)
    split = {"path": str(data.resolve()), "train_episodes": train_ids, "val_episodes": val_ids,
             "train_samples": int(sum(len(episodes[i]["actions"]) for i in train_ids))}
    policy.save_pretrained(out, stats=stats, data=split, bc=asdict(cfg))
    return {"out": str(out), "episodes": len(episodes), "val_episodes": len(val_ids), "samples": split["train_samples"],
            "untrained_val_mse": stats[0]["val_mse"], "val_mse": stats[-1]["val_mse"], "train_loss": stats[-1]["train_loss"]}


def write_metrics(out: Path, stats: list[dict]) -> None:
    """metrics.jsonl and loss_curve.png (train loss and validation MSE vs epoch), both atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    with atomic_write(out / "metrics.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in stats))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, label, style in (("train_loss", "train loss", "x--"), ("val_mse", "validation MSE", "o-")):
        points = [(row["epoch"], row[key]) for row in stats if row[key] is not None]
        if points:
            ax.plot(*zip(*points), style, label=label)
    ax.set(xlabel="epoch", ylabel="MSE (standardized actions)", yscale="log", title=f"BC {out.name}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    with atomic_write(out / "loss_curve.png") as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def report(summary: dict) -> None:
    def fmt(v):
        return "-" if v is None else f"{v:.4f}"

    print(f"BC on {summary['episodes']} episodes ({summary['val_episodes']} held out, {summary['samples']} training samples): "
          f"val MSE {fmt(summary['untrained_val_mse'])} untrained -> {fmt(summary['val_mse'])} -> {summary['out']}\n"
          f"  deploy: ros2 launch real cube_pick.launch.py checkpoint:={summary['out']} (policies.Policy.from_pretrained)")


@hydra.main(version_base="1.3", config_path=conf_dir(__file__), config_name="train_bc")
def main(cfg) -> None:
    with bad_input_exits():
        config = settings(cfg)
        with run_lock(config.out):
            report(train(config))


cli = hydra_entry(main)  # the console script's target (pyproject.toml)

if __name__ == "__main__":
    cli()
