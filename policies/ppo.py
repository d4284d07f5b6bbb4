"""PPO on frozen features through stable-baselines3, as in MVP (docs/design.md section 9).

    from policies.ppo import PPOConfig, train_ppo
    model, stats = train_ppo(lambda: gym.make(...), StateFeatures(), PPOConfig(n_envs=2, n_steps=64), 10_000, out_dir="runs/ppo")

- `FeatureObservation` (a gymnasium ObservationWrapper) replaces the env's Dict observation by
  {"features": provider(obs), "proprio": obs["proprio"]}. The provider runs once per env step, and
  SB3's rollout buffer stores those arrays: features are cached with the sample and never
  recomputed during the PPO epochs; the encoder never sees a gradient.
- `MVPExtractor` + net_arch give MVP's actor: features -> standardize -> Linear(->128), proprio ->
  Linear(->128), concatenated (256), then MLP 256-128-64 SELU and SB3's linear action head. With
  no proprio (the privileged-state provider) the features go Linear(->256), as `Actor.for_state`.
  The critic has its own extractor and MLP of the same shape (share_features_extractor=False).
- `export_actor` copies the Gaussian policy's mean into a `policies.Actor(bound="clip")`, so a PPO
  run is evaluated and deployed like a DAgger one (safetensors, no pickle). SB3's own zip
  (`ppo.zip`) is kept for resuming; loading it runs torch.load (weights_only is not guaranteed),
  so only load zips you wrote.

Like the rest of policies/, this module never imports sim: envs arrive as gymnasium env factories.
It imports stable-baselines3, so `import policies` does not import it (use `policies.ppo`).
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from policies.actor import Actor
from policies.features import FeatureProvider

__all__ = ["FeatureObservation", "MVPExtractor", "PPOConfig", "export_actor", "make_ppo", "train_ppo"]


@dataclass
class PPOConfig:
    """MVP's PPO (256 envs x 32 steps, 10 epochs, 4 minibatches, clip 0.1, gamma 0.99, lambda 0.95,
    lr 1e-3 Franka / 5e-4 Kuka with a cosine schedule). n_envs/n_steps scale down for a CPU."""

    n_envs: int = 256
    n_steps: int = 32  # per env per rollout
    epochs: int = 10
    minibatches: int = 4
    clip: float = 0.1
    gamma: float = 0.99
    gae_lambda: float = 0.95
    lr: float = 1e-3
    schedule: str = "cosine"  # cosine | constant
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 1.0
    log_std_init: float = 0.0
    target_kl: float | None = None  # SB3's early stop of an update's epochs (MVP: none)
    stats_steps: int = 32  # random-action steps (per env) to estimate the feature standardization; 0: none
    seed: int = 0

    def __post_init__(self):
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule={self.schedule!r}: use cosine or constant")
        if min(self.n_envs, self.n_steps, self.epochs, self.minibatches) < 1 or self.n_envs * self.n_steps < self.minibatches:
            raise ValueError(f"n_envs={self.n_envs}, n_steps={self.n_steps}, epochs={self.epochs}, minibatches={self.minibatches}: "
                             "all >= 1 and n_envs * n_steps >= minibatches")

    @property
    def batch_size(self) -> int:
        return self.n_envs * self.n_steps // self.minibatches

    def learning_rate(self):
        """A constant, or SB3's schedule of progress_remaining (1 -> 0): cosine from lr to 0."""
        if self.schedule == "constant":
            return self.lr
        lr = self.lr
        return lambda remaining: lr * 0.5 * (1.0 + math.cos(math.pi * (1.0 - remaining)))


class FeatureObservation(gym.ObservationWrapper):
    """obs dict -> {"features": provider(obs[None])[0], "proprio": obs[proprio_key]} (proprio_key=None: features only)."""

    def __init__(self, env: gym.Env, provider: FeatureProvider, proprio_key: str | None = "proprio", dim: int | None = None):
        super().__init__(env)
        self.provider, self.proprio_key = provider, proprio_key
        space = env.observation_space
        dim = dim or provider.dim or int(np.prod(space[provider.key].shape))  # StateFeatures: the state's size
        spaces = {"features": gym.spaces.Box(-np.inf, np.inf, (int(dim),), np.float32)}
        if proprio_key is not None:
            p = space[proprio_key]
            spaces["proprio"] = gym.spaces.Box(p.low.astype(np.float32), p.high.astype(np.float32), p.shape, np.float32)
        self.observation_space = gym.spaces.Dict(spaces)

    def observation(self, obs: dict) -> dict:
        features = np.asarray(self.provider({k: np.asarray(v)[None] for k, v in obs.items()}), dtype=np.float32)[0]
        out = {"features": features}
        if self.proprio_key is not None:
            out["proprio"] = np.asarray(obs[self.proprio_key], dtype=np.float32)
        return out


class MVPExtractor(BaseFeaturesExtractor):
    """{"features", "proprio"} -> concat(Linear(standardized features ->128), Linear(proprio ->128)) (256);
    {"features"} alone -> Linear(standardized features ->256) (the state actor)."""

    def __init__(self, observation_space: gym.spaces.Dict, embed_dim: int = 128, state_dim: int = 256):
        feat_dim = observation_space["features"].shape[0]
        has_proprio = "proprio" in observation_space.spaces
        super().__init__(observation_space, features_dim=2 * embed_dim if has_proprio else state_dim)
        self.feat_proj = nn.Linear(feat_dim, embed_dim if has_proprio else state_dim)
        self.proprio_proj = nn.Linear(observation_space["proprio"].shape[0], embed_dim) if has_proprio else None
        self.register_buffer("feat_mean", torch.zeros(feat_dim))
        self.register_buffer("feat_std", torch.ones(feat_dim))

    def forward(self, obs: dict) -> torch.Tensor:
        x = self.feat_proj((obs["features"] - self.feat_mean) / self.feat_std)
        if self.proprio_proj is not None:
            x = torch.cat([x, self.proprio_proj(obs["proprio"])], dim=-1)
        return x


HIDDEN = (256, 128, 64)


def make_ppo(venv, config: PPOConfig, verbose: int = 0):
    """An SB3 PPO on a VecEnv of `FeatureObservation` envs with MVP's actor and hyper-parameters."""
    from stable_baselines3 import PPO

    policy_kwargs = {"features_extractor_class": MVPExtractor, "share_features_extractor": False,
                     "net_arch": {"pi": list(HIDDEN), "vf": list(HIDDEN)}, "activation_fn": nn.SELU,
                     "log_std_init": config.log_std_init, "ortho_init": False}
    return PPO("MultiInputPolicy", venv, learning_rate=config.learning_rate(), n_steps=config.n_steps,
               batch_size=config.batch_size, n_epochs=config.epochs, gamma=config.gamma, gae_lambda=config.gae_lambda,
               clip_range=config.clip, ent_coef=config.ent_coef, vf_coef=config.vf_coef, max_grad_norm=config.max_grad_norm,
               target_kl=config.target_kl, policy_kwargs=policy_kwargs, seed=config.seed, device="cpu", verbose=verbose)


@torch.no_grad()
def set_feature_stats(model, features: np.ndarray) -> None:
    """Standardize both extractors' feature inputs by `policies.actor.feature_stats(features)` (N, feat_dim):
    the same median-floored rule as DAgger and BC."""
    from policies.actor import feature_stats

    mean, std = feature_stats(features)
    policy = model.policy
    for ext in (policy.features_extractor, policy.pi_features_extractor, policy.vf_features_extractor):
        ext.feat_mean.copy_(mean.to(ext.feat_mean.device))
        ext.feat_std.copy_(std.to(ext.feat_std.device))


def _random_features(venv, steps: int, seed: int) -> np.ndarray:
    """Features seen under uniform random actions (`steps` per env): the standardization's data."""
    venv.seed(seed)
    obs = venv.reset()
    rng = np.random.default_rng(seed)
    space, rows = venv.action_space, [obs["features"]]
    for _ in range(steps - 1):
        actions = rng.uniform(space.low, space.high, (venv.num_envs, *space.shape)).astype(np.float32)
        obs, *_ = venv.step(actions)
        rows.append(obs["features"])
    return np.concatenate(rows)


def export_actor(model) -> Actor:
    """The policy's mean action as a `policies.Actor(bound="clip")` (act() clips to [-1, 1] like SB3 does)."""
    policy = model.policy
    ext = policy.pi_features_extractor
    action_dim = policy.action_net.out_features
    proprio_dim = 0 if ext.proprio_proj is None else ext.proprio_proj.in_features
    actor = Actor(ext.feat_proj.in_features, proprio_dim, action_dim, embed_dim=ext.feat_proj.out_features if proprio_dim else 128,
                  hidden=HIDDEN, bound="clip")
    linears = [m for m in policy.mlp_extractor.policy_net if isinstance(m, nn.Linear)] + [policy.action_net]
    targets = [m for m in actor.mlp if isinstance(m, nn.Linear)]
    assert len(linears) == len(targets)
    state = {"feat_proj.weight": ext.feat_proj.weight, "feat_proj.bias": ext.feat_proj.bias,
             "feat_mean": ext.feat_mean, "feat_std": ext.feat_std}
    if proprio_dim:
        state.update({"proprio_proj.weight": ext.proprio_proj.weight, "proprio_proj.bias": ext.proprio_proj.bias})
    names = [n for n, m in actor.mlp.named_children() if isinstance(m, nn.Linear)]
    for name, src in zip(names, linears):
        state[f"mlp.{name}.weight"], state[f"mlp.{name}.bias"] = src.weight, src.bias
    actor.load_state_dict({k: v.detach().clone() for k, v in state.items()})
    return actor.eval()


def _metrics_callback(on_row: Callable[[dict], None]):
    from stable_baselines3.common.callbacks import BaseCallback

    class Metrics(BaseCallback):
        """One row per rollout+update: env_steps, success_rate (episodes finished in the last 100,
        from info["is_success"]), ep_rew_mean, and the update's losses."""

        def __init__(self):
            super().__init__()
            self.pending: dict | None = None

        def _flush(self) -> None:
            if self.pending is not None:
                values = self.model.logger.name_to_value
                for key in ("loss", "policy_gradient_loss", "value_loss", "approx_kl", "clip_fraction", "std"):
                    if f"train/{key}" in values:
                        self.pending[key] = float(values[f"train/{key}"])
                on_row(self.pending)
                self.pending = None

        def _on_rollout_start(self) -> None:
            self._flush()  # the previous rollout's row, now with its update's losses

        def _on_rollout_end(self) -> None:
            m = self.model
            success = list(m.ep_success_buffer)
            rewards = [e["r"] for e in m.ep_info_buffer]
            self.pending = {"iteration": len(rows_seen), "env_steps": int(m.num_timesteps),
                            "episodes": len(rewards), "success_rate": float(np.mean(success)) if success else None,
                            "ep_rew_mean": float(np.mean(rewards)) if rewards else None}
            rows_seen.append(1)

        def _on_step(self) -> bool:
            return True

        def _on_training_end(self) -> None:
            self._flush()

    rows_seen: list = []
    return Metrics()


def make_vec_env(env_fns: list[Callable[[], gym.Env]], provider: FeatureProvider, proprio_key: str | None = "proprio"):
    """SB3 DummyVecEnv of Monitor(FeatureObservation(env)): one provider call per env per step (unbatched)."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    return DummyVecEnv([lambda fn=fn: Monitor(FeatureObservation(fn(), provider, proprio_key)) for fn in env_fns])


def train_ppo(env_fn: Callable[[], gym.Env], provider: FeatureProvider, config: PPOConfig, total_timesteps: int,
              out_dir=None, proprio_key: str | None = "proprio", callback: Callable[[dict], None] | None = None):
    """Train PPO on `config.n_envs` copies of `env_fn()`; return (SB3 model, per-update stats).

    proprio_key=None drops proprioception (the privileged-state actor). With `out_dir`: writes
    ppo.zip (SB3's checkpoint), actor.safetensors/.json (`export_actor`, kind "dagger_actor" so
    eval tools load it like a DAgger actor) and stats in actor.json. An `out_dir` holding ppo.zip
    continues from it up to `total_timesteps` env steps in all (the cosine schedule restarts over
    the remaining steps: a resumed run is not identical to an uninterrupted one).
    """
    from stable_baselines3 import PPO

    from toto_robot.checkpoint import save_weights

    venv = make_vec_env([env_fn] * config.n_envs, provider, proprio_key)
    out = None if out_dir is None else Path(out_dir)
    stats: list[dict] = []
    if out is not None and (out / "ppo.zip").is_file():
        model = PPO.load(out / "ppo.zip", env=venv, device="cpu")  # runs torch.load: only our own zips
        if (out / "actor.json").is_file():
            stats = json.loads((out / "actor.json").read_text()).get("stats", [])
        reset = False
    else:
        model = make_ppo(venv, config)
        if config.stats_steps:
            set_feature_stats(model, _random_features(venv, config.stats_steps, config.seed))
        reset = True

    def on_row(row: dict) -> None:
        row["iteration"] = len(stats)
        stats.append(row)
        if callback is not None:
            callback(row)

    remaining = total_timesteps - model.num_timesteps
    try:
        if reset:
            venv.seed(config.seed)  # learn() resets: episodes start from the seeded states
        if remaining > 0:
            model.learn(remaining, callback=_metrics_callback(on_row), reset_num_timesteps=reset)
    finally:
        venv.close()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / "ppo.zip")
        actor = export_actor(model)
        save_weights(out, "actor", actor.state_dict(), kind="dagger_actor", config=actor.config,
                     stats=stats, ppo=asdict(config))
    return model, stats
