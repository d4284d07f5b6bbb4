"""PPO on frozen features through stable-baselines3, as in MVP (docs/design.md section 9).

    from policies.ppo import PPOConfig, train_ppo
    model, stats = train_ppo(lambda: gym.make(...), StateFeatures(), PPOConfig(n_envs=2, n_steps=64), 10_000, out_dir="runs/ppo")

- `FeatureObservation` (a gymnasium ObservationWrapper) replaces the env's Dict observation by
  {"features": provider(obs), "proprio": obs["proprio"]}. The provider runs once per env step, and
  SB3's rollout buffer stores those arrays: features are cached with the sample and never
  recomputed during the PPO epochs; the encoder never sees a gradient.
- `MVPActorCriticPolicy` is SB3's ActorCriticPolicy with `policies.Actor` itself as the Gaussian's
  mean (bound="clip": a linear output, SB3 clips executed actions) and a second Actor of the same
  shape, with one output, as the critic: the module DAgger and BC train, not a re-declaration.
  The observation reaches them as [features | proprio] (`ConcatExtractor`, no parameters).
- `export_policy` puts that actor into a `policies.Policy`, so a PPO run is evaluated and deployed
  like a DAgger one (safetensors, no pickle). Resuming reads `ppo_state.*` (the SB3 policy's
  weights as safetensors, counters as JSON) and `ppo_optimizer.pt` (read with weights_only=True),
  and rebuilds everything else from the config. SB3's own zip is never written or loaded: its
  loader unpickles `:serialized:` entries with cloudpickle, so a crafted `ppo.zip` in a run folder
  ran code (issue 25).

Like the rest of policies/, this module never imports sim: envs arrive as gymnasium env factories.
It imports stable-baselines3, so `import policies` does not import it (use `policies.ppo`).
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from policies.actor import Actor
from policies.configuration import PolicyConfig
from policies.features import FeatureProvider
from policies.policy import Policy
from toto_robot.checkpoint import CheckpointError, load_state, load_weights, save_state, save_weights

__all__ = ["FeatureObservation", "MVPActorCriticPolicy", "PPOConfig", "export_policy", "make_ppo", "train_ppo"]


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


class ConcatExtractor(BaseFeaturesExtractor):
    """{"features", "proprio"} -> [features | proprio] ({"features"} alone for the state actor); no parameters."""

    def __init__(self, observation_space: gym.spaces.Dict):
        self.feat_dim = observation_space["features"].shape[0]
        self.proprio_dim = observation_space["proprio"].shape[0] if "proprio" in observation_space.spaces else 0
        super().__init__(observation_space, features_dim=self.feat_dim + self.proprio_dim)

    def forward(self, obs: dict) -> torch.Tensor:
        return torch.cat([obs["features"], obs["proprio"]], dim=-1) if self.proprio_dim else obs["features"]


class ActorCritic(nn.Module):
    """SB3's `mlp_extractor` slot: MVP's actor (the action mean) and a critic of the same shape (the value)."""

    def __init__(self, feat_dim: int, proprio_dim: int, action_dim: int):
        super().__init__()
        self.feat_dim, self.proprio_dim = feat_dim, proprio_dim
        self.actor = Actor(feat_dim, proprio_dim, action_dim, bound="clip")
        self.critic = Actor(feat_dim, proprio_dim, 1, bound="clip")
        self.latent_dim_pi, self.latent_dim_vf = action_dim, 1

    def _split(self, x: torch.Tensor):
        return x[:, :self.feat_dim], (x[:, self.feat_dim:] if self.proprio_dim else None)

    def forward_actor(self, x: torch.Tensor) -> torch.Tensor:
        return self.actor(*self._split(x))

    def forward_critic(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(*self._split(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(x), self.forward_critic(x)


class MVPActorCriticPolicy(ActorCriticPolicy):
    """SB3's Gaussian actor-critic with `ActorCritic` as its networks: the actor's output is the mean,
    so SB3's extra output layers (action_net, value_net) become identities."""

    def __init__(self, observation_space, action_space, lr_schedule, **kwargs):
        kwargs.update(features_extractor_class=ConcatExtractor, share_features_extractor=True, ortho_init=False)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        ext = self.features_extractor
        self.mlp_extractor = ActorCritic(ext.feat_dim, ext.proprio_dim, int(np.prod(self.action_space.shape)))

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net, self.value_net = nn.Identity(), nn.Identity()
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


PPO_STATE, PPO_OPTIMIZER = "ppo_state", "ppo_optimizer.pt"
LEGACY_ZIP = "ppo.zip"  # what earlier versions saved with SB3's pickling `save`


def save_ppo_state(model, config: PPOConfig, out: Path) -> None:
    """What a resume needs, without pickle: the policy's weights, the optimizer state, the counters."""
    save_state(out / PPO_OPTIMIZER, model.policy.optimizer.state_dict())
    save_weights(out, PPO_STATE, model.policy.state_dict(), kind="ppo_state", config=asdict(config),
                 num_timesteps=int(model.num_timesteps), n_updates=int(model._n_updates))


def load_ppo_state(venv, config: PPOConfig, out: Path):
    """A PPO built from `config` with the saved weights, optimizer state and counters (no unpickling)."""
    state, meta = load_weights(out, PPO_STATE, kind="ppo_state")
    model = make_ppo(venv, config)
    try:
        model.policy.load_state_dict(state)
        model.policy.optimizer.load_state_dict(load_state(out / PPO_OPTIMIZER))
    except (RuntimeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{out / PPO_STATE}.safetensors does not fit this PPO ({str(error).splitlines()[0]}): "
                              "resume with the settings it was trained with, or use another out") from None
    model.num_timesteps, model._n_updates = int(meta["num_timesteps"]), int(meta["n_updates"])
    return model


def make_ppo(venv, config: PPOConfig, verbose: int = 0):
    """An SB3 PPO on a VecEnv of `FeatureObservation` envs with MVP's actor and hyper-parameters."""
    from stable_baselines3 import PPO

    return PPO(MVPActorCriticPolicy, venv, learning_rate=config.learning_rate(), n_steps=config.n_steps,
               batch_size=config.batch_size, n_epochs=config.epochs, gamma=config.gamma, gae_lambda=config.gae_lambda,
               clip_range=config.clip, ent_coef=config.ent_coef, vf_coef=config.vf_coef, max_grad_norm=config.max_grad_norm,
               target_kl=config.target_kl, policy_kwargs={"log_std_init": config.log_std_init},
               seed=config.seed, device="cpu", verbose=verbose)


@torch.no_grad()
def set_feature_stats(model, features: np.ndarray) -> None:
    """Standardize the actor's and the critic's feature inputs from `features` (N, feat_dim), by the
    same median-floored rule as DAgger and BC (`Actor.set_feature_stats`)."""
    nets = model.policy.mlp_extractor
    nets.actor.set_feature_stats(features)
    nets.critic.set_feature_stats(features)


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


def export_policy(model, template: PolicyConfig | None = None) -> Policy:
    """The PPO actor (the Gaussian's mean) as a `policies.Policy`; `template` adds the encoder spec and contract."""
    actor = model.policy.mlp_extractor.actor
    config = replace(template or PolicyConfig(), feat_dim=actor.feat_dim, proprio_dim=actor.proprio_dim,
                     action_dim=actor.action_dim, bound="clip")
    policy = Policy(config)
    policy.actor.load_state_dict(actor.state_dict())
    return policy.eval()


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
              out_dir=None, proprio_key: str | None = "proprio", callback: Callable[[dict], None] | None = None,
              template: PolicyConfig | None = None):
    """Train PPO on `config.n_envs` copies of `env_fn()`; return (SB3 model, per-update stats).

    proprio_key=None drops proprioception (the privileged-state actor). With `out_dir`: writes
    ppo_state.* and ppo_optimizer.pt (the resume state, no pickle) and model.safetensors/.json (`export_policy`, the policy every tool
    loads) with the stats. `template` (a PolicyConfig) gives the policy its encoder spec and contract. An `out_dir` holding ppo_state
    continues from it up to `total_timesteps` env steps in all (the cosine schedule restarts over
    the remaining steps: a resumed run is not identical to an uninterrupted one).
    """
    venv = make_vec_env([env_fn] * config.n_envs, provider, proprio_key)
    out = None if out_dir is None else Path(out_dir)
    stats: list[dict] = []
    if out is not None and (out / LEGACY_ZIP).is_file() and not (out / f"{PPO_STATE}.json").is_file():
        raise CheckpointError(f"{out / LEGACY_ZIP} is an earlier SB3 checkpoint, which loads by unpickling (a crafted one runs "
                              f"code): it is not read; delete it to train {out} from scratch")
    if out is not None and (out / f"{PPO_STATE}.json").is_file():
        model = load_ppo_state(venv, config, out)
        if (out / "model.json").is_file():
            stats = json.loads((out / "model.json").read_text()).get("stats", [])
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
        save_ppo_state(model, config, out)
        export_policy(model, template).save_pretrained(out, stats=stats, ppo=asdict(config))
    return model, stats
