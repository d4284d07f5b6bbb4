"""DAgger and behaviour cloning of a privileged expert, on frozen features (MVP's sim protocol).

Each round k:
1. roll out the mixture policy in the env: the executed action is
   beta_k * expert + (1 - beta_k) * student, beta_0 = 1 (round 0 is pure expert), decaying;
2. relabel every visited state with the expert's action (the expert is a memoryless feedback
   policy on obs["state"], so it can label states only the student reaches: that is DAgger's
   point, the student learns to recover from its own mistakes);
3. aggregate the rows (features computed once, policies/features.py) into the buffer;
4. train the actor by MSE on the whole buffer (AdamW, warm-started from the previous round).
`algo="bc"` is round 0 alone: expert rollouts, one fit.

Nothing here imports sim: the env is any gymnasium env (single or vector, Dict observations
with `state`, plus what the feature provider reads, and `info["success"]`), and the expert is
a callable `expert(state (S,)) -> action (A,)` passed in by the caller (sim/train_policy.py).

The result is a `policies.Policy` (policies/policy.py), the object sim and real both deploy.

Resuming: with `out_dir`, the buffer (.npz) and then the policy (model.safetensors + model.json
with the rounds done and the stats) are written atomically after every round. A rerun with the
same `out_dir` continues at the next round; rows of a round whose policy was never saved are
dropped and that round is redone (rollouts are seeded by round, so it is redone identically).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from policies.buffer import AggregatedBuffer
from policies.configuration import PolicyConfig
from policies.features import FeatureProvider, StateFeatures
from policies.policy import Policy
from toto_robot.resume import check_resumable

ALGOS = ("dagger", "bc")
SCHEDULES = ("exponential", "linear", "constant")


@dataclass
class DaggerConfig:
    """Options of `train_dagger` (the `algo=dagger|bc` group of sim/train_policy.py)."""

    algo: str = "dagger"
    # the protocol the main job measured (docs/benchmarks.md, the quickstart); sim/trainers.py's
    # settings, the main job and sim/compare.py take these defaults from here
    rounds: int = 6  # forced to 1 for algo=bc
    steps_per_round: int = 8192  # env steps collected per round (all envs together)
    beta0: float = 1.0
    beta_schedule: str = "exponential"  # beta_k = beta0 * beta_decay**k | max(0, beta0 - k * beta_decay) | beta0
    beta_decay: float = 0.5
    epochs: int = 10  # passes over the whole buffer per round
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    eval_episodes: int = 0  # >0: also run the pure student (beta=0) for this many episodes each round
    seed: int = 0

    def __post_init__(self):
        if self.algo not in ALGOS:
            raise ValueError(f"algo={self.algo!r}: use one of {ALGOS}")
        if self.beta_schedule not in SCHEDULES:
            raise ValueError(f"beta_schedule={self.beta_schedule!r}: use one of {SCHEDULES}")
        if min(self.rounds, self.steps_per_round, self.epochs, self.batch_size) < 1:
            raise ValueError("rounds, steps_per_round, epochs and batch_size must be >= 1")

    def beta(self, k: int) -> float:
        """The expert's share of the executed action in round k (1 for BC)."""
        if self.algo == "bc":
            return 1.0
        if self.beta_schedule == "exponential":
            b = self.beta0 * self.beta_decay**k
        elif self.beta_schedule == "linear":
            b = self.beta0 - k * self.beta_decay
        else:
            b = self.beta0
        return float(min(1.0, max(0.0, b)))


def as_vector_env(env) -> gym.vector.VectorEnv:
    """A vector env as is; a single env wrapped as a 1-env SyncVectorEnv (one rollout code path)."""
    if isinstance(env, gym.vector.VectorEnv):
        return env
    return gym.vector.SyncVectorEnv([lambda: env])


def _autoreset_mode(env) -> str:
    mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    mode = getattr(mode, "value", mode)
    if mode not in ("NextStep", "SameStep"):
        raise ValueError(f"vector env autoreset mode {mode!r}: use NEXT_STEP or SAME_STEP")
    return mode


def _successes(info: dict, done: np.ndarray, mode: str) -> int:
    """How many of the episodes ending this step (mask `done`) succeeded."""
    if mode == "SameStep" and "final_info" in info:
        info = info["final_info"]
    if "success" not in info:
        return 0
    success = np.asarray(info["success"], dtype=bool) & np.asarray(info.get("_success", True), dtype=bool)
    return int((success & done).sum())


def rollout(env, provider: FeatureProvider, expert: Callable | None, actor: Policy | None, beta: float, *,
            seed: int, steps: int | None = None, episodes: int | None = None,
            buffer: AggregatedBuffer | None = None, round_index: int = 0,
            on_step: Callable[[dict], None] | None = None) -> dict:
    """Step `env` (vector) from a seeded reset until `steps` transitions or `episodes` finished episodes.

    Executes beta * expert + (1 - beta) * student; stores (features, proprio, expert action) of every
    state acted in into `buffer` if given. Episodes still running at the end are not counted.
    With `episodes`, env i runs a quota fixed in advance (episodes // n, one more for the first
    episodes % n envs) and its later episodes are ignored: counting the first episodes to finish
    would favour short ones (successes end early), a bias that grows with the number of envs.
    Returns {steps, episodes, successes, success_rate, student_mse} (student_mse: mean squared
    gap between student and expert actions on the visited states). Undefined rates are None, not
    nan, so stats stay plain JSON and compare equal across a resume. `on_step({steps, episodes,
    successes})` is called after every vector step (progress within a round).
    """
    if (steps is None) == (episodes is None):
        raise ValueError("give exactly one of steps or episodes")
    mode = _autoreset_mode(env)
    obs, _ = env.reset(seed=seed)
    n = env.num_envs
    skip = np.zeros(n, dtype=bool)  # NEXT_STEP: this row shows a finished episode; its action is ignored
    quota = None if episodes is None else episodes // n + (np.arange(n) < episodes % n)
    done_per_env = np.zeros(n, dtype=int)
    taken = finished = succeeded = 0
    gap_sum, gap_count = 0.0, 0
    action = np.zeros((n, *env.single_action_space.shape), dtype=np.float32)
    while (steps is not None and taken < steps) or (quota is not None and (done_per_env < quota).any()):
        valid = ~skip if quota is None else ~skip & (done_per_env < quota)
        action[:] = 0.0  # rows not valid: a NEXT_STEP reset row (action ignored) or an env past its quota
        if valid.any():
            # Only valid rows are encoded: an env past its quota (evaluation) would cost encoder time for nothing.
            rows = obs if valid.all() else {k: np.asarray(v)[valid] for k, v in obs.items()}
            features = provider(rows)
            proprio = np.asarray(rows["proprio"], dtype=np.float32) if "proprio" in rows else np.zeros((len(features), 0), np.float32)
            labels = None if expert is None else np.stack([np.asarray(expert(s), dtype=np.float32) for s in rows["state"]])
            student = None if actor is None else actor.act(features, proprio)
            if beta >= 1.0 or student is None:
                if labels is None:
                    raise ValueError("nothing to act with: pass an expert (beta > 0) or an actor")
                action[valid] = labels
            elif beta <= 0.0 or labels is None:
                action[valid] = student
            else:
                action[valid] = beta * labels + (1.0 - beta) * student
            if buffer is not None and labels is not None:
                buffer.add(features, proprio, labels, round_index)
            if student is not None and labels is not None:
                gap_sum += float(((student - labels) ** 2).mean(1).sum())
                gap_count += len(labels)
        taken += int(valid.sum())
        obs, _, terminated, truncated, info = env.step(np.clip(action, -1.0, 1.0))
        done = (np.asarray(terminated) | np.asarray(truncated)) & valid
        done_per_env += done
        finished += int(done.sum())
        succeeded += _successes(info, done, mode)
        skip = done if mode == "NextStep" else np.zeros(n, dtype=bool)
        if on_step is not None:
            on_step({"steps": taken, "episodes": finished, "successes": succeeded})
    return {"steps": taken, "episodes": finished, "successes": succeeded,
            "success_rate": succeeded / finished if finished else None,
            "student_mse": gap_sum / gap_count if gap_count else None}


def train_actor(actor: Policy, buffer: AggregatedBuffer, epochs: int, batch_size: int, lr: float,
                weight_decay: float, seed: int, on_epoch: Callable[[int, float], None] | None = None) -> float:
    """MSE regression of the policy onto the buffer's expert actions, in its standardized action units
    (`Policy.target`); returns the last epoch's mean loss.

    A fresh AdamW each round: the optimizer holds no state across rounds, so a resumed run trains
    exactly like an uninterrupted one without saving optimizer moments. The learning rate decays
    to zero over the round (cosine): the policy deployed next is a settled one, not a snapshot
    of the last noisy step, which made closed-loop success swing from round to round.
    `on_epoch(epoch, mean_loss)` (epoch counted from 1) runs after every epoch, e.g. for validation
    inside one cosine schedule (policies/bc.py); it must leave the policy's weights alone.
    """
    data = {k: torch.from_numpy(v) for k, v in buffer.arrays().items()}
    features, proprio = data["features"], data["proprio"]
    with torch.no_grad():
        actions = actor.target(data["actions"])
    optimizer = torch.optim.AdamW(actor.parameters(), lr=lr, weight_decay=weight_decay)
    total = epochs * -(-len(actions) // batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total)))
    generator = torch.Generator().manual_seed(seed)
    actor.train()
    loss_sum = 0.0
    for epoch in range(1, epochs + 1):
        loss_sum, order = 0.0, torch.randperm(len(actions), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            pred = actor(features[idx], proprio[idx] if actor.proprio_dim else None)
            loss = torch.nn.functional.mse_loss(pred, actions[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(idx)
        if on_epoch is not None:
            on_epoch(epoch, loss_sum / len(actions))
            actor.train()
    actor.eval()
    return loss_sum / len(actions)


def make_policy(provider: FeatureProvider, features: np.ndarray, proprio_dim: int, action_dim: int, seed: int,
                template: PolicyConfig | None = None) -> Policy:
    """A fresh policy sized from one batch of features: MVP's actor, or the one-input state actor when the
    provider gives the privileged state. `template` holds the rest (encoder spec, contract, bound)."""
    config = replace(template or PolicyConfig(), feat_dim=int(features.shape[1]), action_dim=int(action_dim),
                     proprio_dim=0 if isinstance(provider, StateFeatures) else int(proprio_dim))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Policy(config, features=provider)


RESUMABLE = ("rounds", "eval_episodes")  # options a resumed run may change; the rest must match the saved run


def _resume(out: Path, cfg: DaggerConfig, provider: FeatureProvider) -> tuple[Policy | None, AggregatedBuffer, list[dict]]:
    """(policy, buffer, stats) saved in `out` by a previous run, or (None, empty, []) to start fresh.

    Raises ValueError if the saved run used other options (other than `RESUMABLE`): mixing rounds
    collected or trained differently would silently make a run no one asked for."""
    buffer = AggregatedBuffer.load(out / "buffer.npz") if (out / "buffer.npz").is_file() else AggregatedBuffer()
    if not any((out / f"{name}.json").is_file() for name in ("model", "actor")):
        buffer.keep_rounds(-1)
        return None, buffer, []
    policy = Policy.from_pretrained(out, features=provider)  # an earlier version's actor.json: one line naming the converter
    check_resumable(out, "a run", policy.meta.get("dagger", {}), asdict(cfg), RESUMABLE, "rerun with those, or use a new out_dir")
    stats = policy.meta["stats"]
    buffer.keep_rounds(len(stats) - 1)
    return policy, buffer, stats


def train_dagger(env, provider: FeatureProvider, expert: Callable, config: DaggerConfig | None = None,
                 actor: Policy | None = None, out_dir=None, callback: Callable[[dict], None] | None = None,
                 demos: AggregatedBuffer | None = None, template: PolicyConfig | None = None,
                 on_step: Callable[[dict], None] | None = None) -> tuple[Policy, list[dict]]:
    """Run DAgger (or BC) in `env`; return (trained policy, per-round stats).

    Stats per round: round, beta, env_steps (so far), episodes, success_rate (of the round's
    rollouts), student_mse (student vs expert on the round's states, before training), buffer
    (rows), train_loss, and eval_success_rate if config.eval_episodes > 0. `callback(stats)`
    is called after each round (logging, progress). `template` (a PolicyConfig) gives the new policy
    what the run knows beyond sizes: the encoder spec, the env's contract, the bound.
    With `out_dir` holding a previous run's rounds, that run continues: its saved policy replaces
    `actor`, and `config.rounds` may be raised to train further. Round 0 sets the policy's
    standardization from its data (`Policy.fit_stats`), also for an `actor` passed in.
    `demos` (rows of recorded demonstrations, policies.demos.demo_buffer) replace round 0's expert
    rollouts: BC from a file, or DAgger started from it (round 0 then costs no env steps).
    `on_step({round, steps, episodes, successes})` reports progress within a round's rollouts.
    """
    cfg = config or DaggerConfig()
    venv = as_vector_env(env)
    rounds = 1 if cfg.algo == "bc" else cfg.rounds
    out = None if out_dir is None else Path(out_dir)
    buffer, stats = AggregatedBuffer(), []
    if out is not None:
        saved_actor, buffer, stats = _resume(out, cfg, provider)
        actor = saved_actor or actor
    env_steps = stats[-1]["env_steps"] if stats else 0
    for k in range(len(stats), rounds):
        beta = cfg.beta(k)
        if actor is None:  # sized from one observation's features
            obs, _ = venv.reset(seed=cfg.seed)
            proprio_dim = int(np.prod(obs["proprio"].shape[1:])) if "proprio" in obs else 0
            action_dim = int(np.prod(venv.single_action_space.shape))
            actor = make_policy(provider, provider(obs), proprio_dim, action_dim, cfg.seed, template)
        actor.eval()
        if k == 0 and demos is not None:
            rows = demos.arrays()
            if rows["features"].shape[1] != actor.config.feat_dim or rows["actions"].shape[1] != actor.config.action_dim:
                raise ValueError(f"demo rows have {rows['features'].shape[1]} features and {rows['actions'].shape[1]} action "
                                 f"values, the policy {actor.config.feat_dim} and {actor.config.action_dim}: record them in this "
                                 "task and encoder")
            buffer.add(rows["features"], rows["proprio"], rows["actions"], 0)
            roll = {"steps": 0, "episodes": 0, "success_rate": None, "student_mse": None}
        else:
            roll = rollout(venv, provider, expert, actor, beta, seed=cfg.seed + 1000 * (k + 1), steps=cfg.steps_per_round,
                           buffer=buffer, round_index=k,
                           on_step=None if on_step is None else lambda done, k=k: on_step({"round": k, **done}))
        env_steps += roll["steps"]
        if k == 0:
            rows = buffer.arrays()
            actor.fit_stats(rows["features"], rows["proprio"], rows["actions"])
        loss = train_actor(actor, buffer, cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.seed + k)
        row = {"round": k, "beta": beta, "env_steps": env_steps, "episodes": roll["episodes"],
               "success_rate": roll["success_rate"], "student_mse": roll["student_mse"],
               "buffer": len(buffer), "train_loss": loss}
        if cfg.eval_episodes:
            row["eval_success_rate"] = evaluate(venv, provider, actor, cfg.eval_episodes, seed=cfg.seed + 10**6 + k)["success_rate"]
        stats.append(row)
        if out is not None:
            buffer.save(out / "buffer.npz")  # before the policy: its JSON is what marks the round done
            actor.save_pretrained(out, stats=stats, dagger=asdict(cfg))
        if callback is not None:
            callback(row)
    return actor, stats


def evaluate(env, provider: FeatureProvider, actor: Policy, episodes: int, seed: int = 0) -> dict:
    """Success rate of the pure student (beta=0) over `episodes` episodes (split over the envs in advance)."""
    return rollout(as_vector_env(env), provider, None, actor, 0.0, seed=seed, episodes=episodes)
