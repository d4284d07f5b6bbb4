"""The trainers `python sim/train_policy.py algo=<name>` can run: one table from a name to its settings and run.

Each trainer is a settings dataclass, the schema of its node in hydra's `algo` group (registered below), and a
run function `run(cfg, out, provider, options, template) -> summary` (sim/train_runs.py). Adding a trainer is its
module and one entry in TRAINERS (docs/design.md section 11): nothing else compares trainer names. Every default
is read from the learning side's own config (policies.DaggerConfig, policies.ppo.PPOConfig), one source each.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Optional

from hydra.core.config_store import ConfigStore

from policies.dagger import DaggerConfig
from policies.ppo import PPOConfig
from sim.train_runs import train_dagger_run, train_ppo_run

_DAGGER, _PPO = DaggerConfig(), PPOConfig()


def _shared(settings, target, exclude=()) -> dict:
    """The fields of dataclass `target` that `settings` also has, with its values."""
    names = {f.name for f in fields(target)} - set(exclude)
    return {f.name: getattr(settings, f.name) for f in fields(settings) if f.name in names}


@dataclass
class DaggerSettings:
    """algo=dagger: DAgger with the task's scripted expert (policies.DaggerConfig's options)."""

    name: str = "dagger"
    rounds: int = _DAGGER.rounds
    steps_per_round: int = _DAGGER.steps_per_round  # env steps per round, all envs together
    beta0: float = _DAGGER.beta0
    beta_schedule: str = _DAGGER.beta_schedule  # exponential | linear | constant
    beta_decay: float = _DAGGER.beta_decay
    epochs: int = _DAGGER.epochs
    batch_size: int = _DAGGER.batch_size
    lr: float = _DAGGER.lr  # MVP's Franka lr; Kuka: algo.lr=5e-4
    weight_decay: float = _DAGGER.weight_decay
    bound: str = "tanh"  # policies.Actor: tanh | clip
    demos: Optional[str] = None  # robomimic-schema HDF5 of the task (python sim/record.py): replaces round 0's expert rollouts

    def config(self, **run) -> DaggerConfig:
        """The DaggerConfig of these settings; `run` adds what the run owns (eval_episodes, seed)."""
        return DaggerConfig(algo="dagger", **_shared(self, DaggerConfig, exclude=("algo",)), **run)


@dataclass
class BCSettings:
    """algo=bc: one round of expert rollouts (or recorded demos, `demos=`) and one fit."""

    name: str = "bc"
    steps_per_round: int = _DAGGER.steps_per_round  # expert env steps, all envs together
    epochs: int = _DAGGER.epochs
    batch_size: int = _DAGGER.batch_size
    lr: float = _DAGGER.lr
    weight_decay: float = _DAGGER.weight_decay
    bound: str = "tanh"
    demos: Optional[str] = None

    def config(self, **run) -> DaggerConfig:
        return DaggerConfig(algo="bc", rounds=1, **_shared(self, DaggerConfig, exclude=("algo", "rounds")), **run)


@dataclass
class PPOSettings:
    """algo=ppo: MVP's PPO through stable-baselines3 (policies.ppo.PPOConfig's options; n_envs is num_envs).
    MVP: 256 envs x 32 steps, 10 epochs, 4 minibatches, lr 1e-3 Franka / 5e-4 Kuka, cosine."""

    name: str = "ppo"
    total_timesteps: int = 100_000  # env steps in all (MVP: 16.4M pick, 8.2M cabinet)
    n_steps: int = _PPO.n_steps  # per env per rollout
    epochs: int = _PPO.epochs
    minibatches: int = _PPO.minibatches
    lr: float = _PPO.lr
    clip: float = _PPO.clip
    gamma: float = _PPO.gamma
    gae_lambda: float = _PPO.gae_lambda
    schedule: str = _PPO.schedule  # cosine | constant
    ent_coef: float = _PPO.ent_coef
    log_std_init: float = _PPO.log_std_init
    target_kl: Optional[float] = _PPO.target_kl  # SB3's early stop of an update's epochs (MVP: none)
    stats_steps: int = _PPO.stats_steps  # random-action steps per env that set the feature standardization

    def config(self, **run) -> PPOConfig:
        """The PPOConfig of these settings; `run` adds what the run owns (n_envs, seed)."""
        return PPOConfig(**_shared(self, PPOConfig), **run)


@dataclass(frozen=True)
class Trainer:
    """A row of the table: the `algo` node's schema, what runs it, and what it fixes about the run."""

    settings: type
    run: Callable[..., dict]
    bound: Optional[str] = None  # the policy's action bound when the trainer fixes it (PPO's mean: clip); else settings.bound
    one_process: bool = False  # its envs step in this process (vectorization=sync only)


TRAINERS: dict[str, Trainer] = {
    "dagger": Trainer(DaggerSettings, train_dagger_run),
    "bc": Trainer(BCSettings, train_dagger_run),
    "ppo": Trainer(PPOSettings, train_ppo_run, bound="clip", one_process=True),
}


def register(name: str, trainer: Trainer) -> None:
    """Add a trainer: the table entry and its hydra node (`algo=<name>`)."""
    TRAINERS[name] = trainer
    ConfigStore.instance().store(group="algo", name=name, node=trainer.settings)


def trainer_of(name: str) -> Trainer:
    if name not in TRAINERS:
        raise ValueError(f"unknown algo {name!r}; valid: {', '.join(TRAINERS)}")
    return TRAINERS[name]


def settings_from_saved(saved: dict):
    """The settings a run's policy.json holds. Runs of earlier versions saved one union of every trainer's
    options; the fields this trainer does not have were never read by it and are dropped."""
    cls = trainer_of(saved.get("name", "dagger")).settings
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in saved.items() if k in names})


for _name, _trainer in list(TRAINERS.items()):
    register(_name, _trainer)
