"""Behaviour cloning for the real robot with MVP's real protocol (docs/design.md section 9).

Actions are next-joint-position deltas + gripper (real/demo_layout.py), fit by MSE with AdamW (lr
1e-3, wd 0.01), cosine decay, batch 128: `policies.dagger.train_actor` on MVP's actor, one round.
Frame features are computed once through the frozen encoder (`policies.demos.demo_buffer` with
`TotoFeatures`) and cached; the encoder never trains.

What differs from the sim BC, and why:
- actions and proprio are standardized with statistics of the training episodes (saved in the
  checkpoint, undone by `BCPolicy.act`): joint deltas are ~0.01 rad and would be drowned by the
  0/1 gripper in an unscaled MSE. The actor's output is therefore linear (bound="clip"), not tanh;
- files whose actions are absolute joint targets (action_mode "joint_position") or empty get
  deltas from consecutive joint positions, q[t+1] - q[t], with the gripper target taken from the
  file's gripper action (else the next gripper observation); each episode's last step is dropped;
- a validation split is held out by episode (frames of one episode are near duplicates, so a
  split by sample would measure memorisation) and its MSE reported every `val_every` epochs.

The checkpoint (`save_bc_policy`) is self-contained: `load_bc_policy(out)` (real/bc_policy.py)
rebuilds encoder, preprocessing, layout and normalization from it.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from policies import Actor, AggregatedBuffer, TotoFeatures, demo_buffer, train_actor
from real.bc_policy import KIND
from real.demo_layout import ACTION_DIM, GRIPPER_CLOSED_BELOW_M, NUM_JOINTS, RealLayout, deltas_from_joints
from real.preprocess import PREPROCESSING

if TYPE_CHECKING:
    from real.train_bc import EncoderSettings


def _cache_key(data: Path, encoder, settings: EncoderSettings, successful_only: bool) -> dict:
    """What the cached features depend on: the demo file's identity and the encoder's weights and settings."""
    weights = Path(settings.path).expanduser().resolve() / "toto.safetensors"
    return {"data": str(data.resolve()), "size": data.stat().st_size, "mtime_ns": data.stat().st_mtime_ns,
            "encoder": str(weights.parent), "weights_mtime_ns": weights.stat().st_mtime_ns, "layer": encoder.layer,
            "pool": settings.pool, "dtype": settings.dtype, "resolution": encoder.resolution, "successful_only": successful_only}


def demo_features(data: Path, encoder, settings: EncoderSettings, successful_only: bool, cache: Path | None) -> AggregatedBuffer:
    """Rows of every kept demo through the frozen encoder, cached in `cache` (.npz + .json key, key last)."""
    from toto_robot.io import atomic_write

    key = _cache_key(data, encoder, settings, successful_only)
    if cache is not None and cache.with_suffix(".json").is_file() and cache.with_suffix(".npz").is_file():
        if json.loads(cache.with_suffix(".json").read_text()) == key:
            return AggregatedBuffer.load(cache.with_suffix(".npz"))
    buffer, _ = demo_buffer(data, TotoFeatures(encoder, batch_size=settings.batch_size), successful_only=successful_only)
    if cache is not None:
        cache.with_suffix(".json").unlink(missing_ok=True)  # the key goes stale first, then the rows change
        buffer.save(cache.with_suffix(".npz"))
        with atomic_write(cache.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(key))
    return buffer


def episode_rows(features, proprio, actions, layout: RealLayout) -> dict[str, np.ndarray]:
    """One episode's training rows: (features, proprio, joint-delta actions), deriving deltas when needed."""
    if layout.action_mode == "joint_delta" and actions.shape[1] == ACTION_DIM:
        return {"features": features, "proprio": proprio, "actions": actions}
    if actions.shape[1] == ACTION_DIM:  # absolute targets: keep their gripper column
        gripper_next = actions[:-1, NUM_JOINTS]
    elif proprio.shape[1] > NUM_JOINTS:  # no actions: the next gripper observation is the target
        g = proprio[1:, NUM_JOINTS]
        gripper_next = g if layout.gripper_obs == "closed_binary" else (g < GRIPPER_CLOSED_BELOW_M).astype(np.float32)
    else:
        gripper_next = np.zeros(len(proprio) - 1, np.float32)
    actions = deltas_from_joints(proprio[:, :NUM_JOINTS], gripper_next)
    return {"features": features[:-1], "proprio": proprio[:-1], "actions": actions}


def split_episodes(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) episode indices: a seeded shuffle, at least one val episode when there are two or more."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_val = 0 if n < 2 or val_fraction <= 0 else min(n - 1, max(1, round(val_fraction * n)))
    return sorted(order[n_val:]), sorted(order[:n_val])


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    std = x.std(0) if len(x) > 1 else np.ones(x.shape[1], np.float32)
    return x.mean(0).astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)


def _mse(actor: Actor, rows: dict) -> float:
    with torch.no_grad():
        pred = actor(torch.from_numpy(rows["features"]), torch.from_numpy(rows["proprio"]))
        return float(torch.nn.functional.mse_loss(pred, torch.from_numpy(rows["actions"])))


def fit_bc(episodes: list[dict], train: list[int], val: list[int], *, epochs: int, batch_size: int, lr: float,
           weight_decay: float, val_every: int, seed: int, callback: Callable[[dict], None] | None = None):
    """(actor, normalization, stats): MVP's actor fit on the train episodes; stats rows every `val_every` epochs.

    Row 0 is the untrained actor. val_mse is in standardized action units (the training loss's).
    """
    cat = {k: np.concatenate([episodes[i][k] for i in train]).astype(np.float32) for k in ("features", "proprio", "actions")}
    (pm, ps), (am, as_) = _stats(cat["proprio"]), _stats(cat["actions"])
    norm = {"proprio_mean": pm, "proprio_std": ps, "action_mean": am, "action_std": as_}

    def standardize(rows: dict) -> dict:
        return {"features": rows["features"].astype(np.float32), "proprio": ((rows["proprio"] - pm) / ps).astype(np.float32),
                "actions": ((rows["actions"] - am) / as_).astype(np.float32)}

    train_rows = standardize(cat)
    val_rows = standardize({k: np.concatenate([episodes[i][k] for i in val]) for k in cat}) if val else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        actor = Actor(cat["features"].shape[1], cat["proprio"].shape[1], ACTION_DIM, bound="clip")
    actor.set_feature_stats(cat["features"])
    buffer = AggregatedBuffer()
    buffer.add(train_rows["features"], train_rows["proprio"], train_rows["actions"], 0)
    stats: list[dict] = []

    def log(epoch: int, loss: float) -> None:
        if epoch % val_every and epoch != epochs:
            return
        row = {"epoch": epoch, "train_loss": loss, "val_mse": None if val_rows is None else _mse(actor, val_rows)}
        stats.append(row)
        if callback is not None:
            callback(row)

    actor.eval()
    log(0, _mse(actor, train_rows))
    train_actor(actor, buffer, epochs, batch_size, lr, weight_decay, seed, on_epoch=log)
    return actor, {k: v.tolist() for k, v in norm.items()}, stats


def save_bc_policy(out: Path, actor: Actor, norm: dict, layout: RealLayout, encoder, settings: EncoderSettings, **extra) -> Path:
    """actor.safetensors + actor.json: everything `load_bc_policy` needs (atomic, JSON last)."""
    from toto_robot.checkpoint import save_weights

    proprio = [f"joint_{i + 1}" for i in range(NUM_JOINTS)] + (["gripper"] if actor.proprio_dim > NUM_JOINTS else [])
    meta_layout = {"proprio": proprio, "gripper_obs": layout.gripper_obs, "gripper_closed_below_m": GRIPPER_CLOSED_BELOW_M,
                   "action": [f"delta_joint_{i + 1}" for i in range(NUM_JOINTS)] + ["gripper_close"],
                   "action_mode": "joint_delta", "control_hz": layout.control_hz}
    enc = {**asdict(settings), "path": str(Path(settings.path).expanduser().resolve()), "layer": encoder.layer,
           "resolution": encoder.resolution, "feature_dim": encoder.feature_dim}
    return save_weights(out, "actor", actor.state_dict(), kind=KIND, config=actor.config, encoder=enc,
                        preprocessing=dict(PREPROCESSING), layout=meta_layout, normalization=norm, **extra)
