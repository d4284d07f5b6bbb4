"""Settings of `python sim/train_policy.py` and `python sim/eval_policy.py`, and what they build.

One structured config per entry point, so a misspelt key or a wrongly typed value is a hydra
error. `algo=dagger|bc|ppo` and `encoder=toto|random|state` are config groups (sim/conf/) that
only set values of this schema. The names are also checked on the raw command line
(`check_choices`) before hydra runs: hydra's own message for an unknown group option is several
lines plus a hint, the project's convention is one `error:` line naming the valid values.

`make_provider` and `env_options` are shared by training and evaluation, so `eval_policy.py`
rebuilds exactly the env and features a run was trained with from its `policy.json`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

from hydra.core.config_store import ConfigStore

from policies.configuration import ENCODER_KINDS, EncoderSpec
from policies.dagger import DaggerConfig
from policies.ppo import PPOConfig
from sim.tasks import TASKS, EnvOptions
from policies import make_features

ALGOS = ("dagger", "bc", "ppo")
VECTORIZATION = ("sync", "async")


_DAGGER, _PPO = DaggerConfig(), PPOConfig()  # where the defaults below come from (one source each)


@dataclass
class AlgoSettings:
    """policies.DaggerConfig's options (bc = one round of expert rollouts and one fit), and
    policies.ppo.PPOConfig's (algo=ppo: epochs and lr are shared; n_envs is num_envs). Every default
    is read from those two classes; `dagger_config`/`ppo_config` turn these settings back into them."""

    name: str = "dagger"
    rounds: int = _DAGGER.rounds
    steps_per_round: int = _DAGGER.steps_per_round  # env steps per round, all envs together
    beta0: float = _DAGGER.beta0
    beta_schedule: str = _DAGGER.beta_schedule  # exponential | linear | constant
    beta_decay: float = _DAGGER.beta_decay
    epochs: int = _DAGGER.epochs  # (PPO's default is the same: 10)
    batch_size: int = _DAGGER.batch_size
    lr: float = _DAGGER.lr  # (PPO's default is the same: 1e-3, MVP's Franka lr; Kuka: algo.lr=5e-4)
    weight_decay: float = _DAGGER.weight_decay
    bound: str = "tanh"  # policies.Actor: tanh | clip
    demos: Optional[str] = None  # robomimic-schema HDF5 of the task (python sim/record.py): replaces round 0's expert rollouts
    # algo=ppo only (MVP: 256 envs x 32 steps, 10 epochs, 4 minibatches, lr 1e-3 Franka / 5e-4 Kuka, cosine)
    total_timesteps: int = 100_000  # env steps in all (MVP: 16.4M pick, 8.2M cabinet)
    n_steps: int = _PPO.n_steps  # per env per rollout
    minibatches: int = _PPO.minibatches
    clip: float = _PPO.clip
    gamma: float = _PPO.gamma
    gae_lambda: float = _PPO.gae_lambda
    schedule: str = _PPO.schedule  # cosine | constant
    ent_coef: float = _PPO.ent_coef
    log_std_init: float = _PPO.log_std_init
    target_kl: Optional[float] = _PPO.target_kl  # SB3's early stop of an update's epochs (MVP: none)
    stats_steps: int = _PPO.stats_steps  # random-action steps per env that set the feature standardization

    def dagger_config(self, **run) -> DaggerConfig:
        """The DaggerConfig of these settings; `run` adds what the run owns (eval_episodes, seed)."""
        return DaggerConfig(algo=self.name, **_shared(self, DaggerConfig, exclude=("algo",)), **run)

    def ppo_config(self, **run) -> PPOConfig:
        """The PPOConfig of these settings; `run` adds what the run owns (n_envs, seed)."""
        return PPOConfig(**_shared(self, PPOConfig), **run)


def _shared(settings, target, exclude=()) -> dict:
    """The fields of dataclass `target` that `settings` also has, with its values."""
    names = {f.name for f in fields(target)} - set(exclude)
    return {f.name: getattr(settings, f.name) for f in fields(settings) if f.name in names}


@dataclass
class TrainPolicyConfig:
    task: str = "franka_pick"
    algo: AlgoSettings = field(default_factory=AlgoSettings)
    encoder: EncoderSpec = field(default_factory=EncoderSpec)  # policies/configuration.py: kind, path, layer, pool, dtype, device
    num_envs: int = 16  # stepped together, so the encoder sees 16 frames a call (benchmarks/dagger_throughput.py: 3x 1 env)
    vectorization: str = "sync"  # sync | async (spawned workers: render in parallel)
    image_size: Optional[int] = None  # None: the encoder's resolution (128 for encoder=state)
    camera: str = "wrist"
    eval_episodes: int = 10  # pure-student episodes after every round: the success curve
    videos: int = 2  # MP4s of pure-student episodes of the final policy in <out>/videos (wrist + third-person)
    seed: int = 0
    out: str = "runs/policy/${task}_${encoder.kind}_${algo.name}"
    env: EnvOptions = field(default_factory=EnvOptions)  # every other env option (sim/tasks.py EnvConfig), e.g. env.episode_seconds=10
    progress: bool = True


EVAL_EPISODES = 50  # a final evaluation's held-out episodes: eval_policy.py, compare.py and the main job


@dataclass
class EvalPolicyConfig:
    run: str = ""  # a run directory of train_policy.py (holds policy.json and actor.*)
    episodes: int = EVAL_EPISODES
    seed: int = 100_000  # episode i resets with seed + i (far from the training seeds)
    videos: int = 0  # MP4s of the first N episodes in <run>/videos/
    camera: str = "wrist+third_person"  # camera(s) of the videos, '+'-joined side by side
    encoder_path: Optional[str] = None  # override the encoder path saved in the run (moved checkpoint)
    # evaluate on an export other than the one the policy was trained on (its fingerprint differs): the
    # result goes to eval_other_encoder.json, naming the export, and eval.json is left as it was
    allow_other_encoder: bool = False
    progress: bool = True


ConfigStore.instance().store(name="train_policy_schema", node=TrainPolicyConfig)
ConfigStore.instance().store(name="eval_policy_schema", node=EvalPolicyConfig)


def check_choices(argv: list[str]) -> None:
    """ValueError (one line) for `task=`, `encoder=` or `algo=` overrides that name no valid choice."""
    valid = {"task": tuple(TASKS), "encoder": ENCODER_KINDS, "algo": ALGOS}
    for arg in argv:
        key, sep, value = arg.lstrip("+").partition("=")
        if sep and key in valid and value not in valid[key]:
            raise ValueError(f"unknown {key} {value!r}; valid: {', '.join(valid[key])}")


def check(cfg: TrainPolicyConfig) -> None:
    """Settings errors that need no env or checkpoint, as one-line ValueErrors."""
    check_choices([f"task={cfg.task}", f"encoder={cfg.encoder.kind}", f"algo={cfg.algo.name}"])
    if cfg.algo.name == "ppo" and cfg.vectorization != "sync":
        raise ValueError("algo=ppo runs its envs in one process (vectorization=sync): the feature provider is per env")
    if cfg.vectorization not in VECTORIZATION:
        raise ValueError(f"vectorization={cfg.vectorization!r}: use one of {VECTORIZATION}")
    if cfg.num_envs < 1 or cfg.eval_episodes < 0 or cfg.videos < 0:
        raise ValueError(f"num_envs={cfg.num_envs} must be >= 1, eval_episodes={cfg.eval_episodes} and videos={cfg.videos} >= 0")


def make_provider(encoder: EncoderSpec, path: str | None = None):
    """(feature provider, the resolution it reads or None for the state) of the run's encoder spec."""
    provider = make_features(encoder, path)
    return provider, getattr(getattr(provider, "encoder", None), "resolution", None)


def env_options(cfg: TrainPolicyConfig, resolution: int | None) -> dict:
    """EnvConfig options of the run's env: no rendering for state features; image size = the encoder's."""
    from dataclasses import asdict

    env = asdict(cfg.env)  # EnvOptions: hydra builds it, load_run rebuilds it from policy.json
    if resolution is None:
        return {**env, "obs_mode": "proprio+state", "image_size": cfg.image_size or 128, "camera": cfg.camera}
    size = cfg.image_size or resolution
    if size != resolution:
        raise ValueError(f"image_size={size} but the encoder at {cfg.encoder.path} reads {resolution}x{resolution} frames: "
                         f"set image_size={resolution} (or leave it unset)")
    return {**env, "obs_mode": "pixels+proprio+state", "image_size": size, "camera": cfg.camera}
