"""Behaviour cloning from recorded episodes, validated on held-out episodes (MVP's real protocol).

    policy, stats = fit_bc(episodes, *split_episodes(len(episodes), 0.1, seed=0), template=config, epochs=100, ...)

`episodes` are dicts of (features, proprio, actions) rows, one per recorded episode, features
computed once through the frozen encoder (policies.demos). The fit is `train_actor` (the same
loop as DAgger's rounds) on a `Policy` built from `template`: MSE, AdamW, cosine decay.
What `template` decides, the caller knows from its data: real demos standardize proprio and
actions (joint deltas are ~0.01 rad and would be drowned by the 0/1 gripper in an unscaled MSE)
and use a linear output (bound="clip"); all three standardizations follow the one
median-floored rule (policies.actor.feature_stats).

Validation is split by episode: frames of one episode are near duplicates, so a split by sample
would measure memorisation. Its MSE is reported every `val_every` epochs, in the training
loss's standardized units.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from policies.buffer import AggregatedBuffer
from policies.configuration import PolicyConfig
from policies.dagger import train_actor
from policies.policy import Policy

FIELDS = ("features", "proprio", "actions")


def split_episodes(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) episode indices: a seeded shuffle, at least one val episode when there are two or more."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_val = 0 if n < 2 or val_fraction <= 0 else min(n - 1, max(1, round(val_fraction * n)))
    return sorted(order[n_val:]), sorted(order[:n_val])


def _mse(policy: Policy, rows: dict) -> float:
    with torch.no_grad():
        f, p, a = (torch.from_numpy(rows[k]) for k in FIELDS)
        return float(torch.nn.functional.mse_loss(policy(f, p if policy.proprio_dim else None), policy.target(a)))


def fit_bc(episodes: list[dict], train: list[int], val: list[int], *, template: PolicyConfig, epochs: int, batch_size: int,
           lr: float, weight_decay: float, val_every: int, seed: int, features=None,
           callback: Callable[[dict], None] | None = None) -> tuple[Policy, list[dict]]:
    """(policy, stats): a policy of `template`'s kind fit on the train episodes; stats rows every `val_every` epochs.

    Row 0 is the untrained policy. `features` (a provider) is attached to the policy for deployment.
    """
    cat = {k: np.concatenate([episodes[i][k] for i in train]).astype(np.float32) for k in FIELDS}
    config = replace(template, feat_dim=cat["features"].shape[1], proprio_dim=cat["proprio"].shape[1],
                     action_dim=cat["actions"].shape[1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = Policy(config, features=features)
    policy.fit_stats(cat["features"], cat["proprio"], cat["actions"])
    val_rows = {k: np.concatenate([episodes[i][k] for i in val]).astype(np.float32) for k in FIELDS} if val else None
    buffer = AggregatedBuffer()
    buffer.add(cat["features"], cat["proprio"], cat["actions"], 0)
    stats: list[dict] = []

    def log(epoch: int, loss: float) -> None:
        if epoch % val_every and epoch != epochs:
            return
        row = {"epoch": epoch, "train_loss": loss, "val_mse": None if val_rows is None else _mse(policy, val_rows)}
        stats.append(row)
        if callback is not None:
            callback(row)

    policy.eval()
    log(0, _mse(policy, cat))
    train_actor(policy, buffer, epochs, batch_size, lr, weight_decay, seed, on_epoch=log)
    return policy, stats
