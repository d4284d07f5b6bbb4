"""Settings of `python sim/train_policy.py` and `python sim/eval_policy.py`, and what they build.

One structured config per entry point, so a misspelt key or a wrongly typed value is a hydra
error. `algo=dagger|bc|ppo` selects a trainer's own settings node (sim/trainers.py), and
`encoder=toto|random|state` is a config group (sim/conf/) that sets values of this schema.
The names are also checked on the raw command line (`check_choices`) before hydra runs: hydra's
own message for an unknown group option is several lines plus a hint, the project's convention is
one `error:` line naming the valid values.

`make_provider` and `env_options` are shared by training and evaluation, so `eval_policy.py`
rebuilds exactly the env and features a run was trained with from its `policy.json`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

from policies.configuration import ENCODER_KINDS, EncoderSpec
from sim.tasks import TASKS, EnvOptions
from sim.trainers import TRAINERS, DaggerSettings, trainer_of
from policies import make_features

VECTORIZATION = ("sync", "async")


@dataclass
class TrainPolicyConfig:
    task: str = "franka_pick"
    algo: Any = field(default_factory=DaggerSettings)  # the trainer's settings: sim/trainers.py (algo=dagger|bc|ppo)
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
EVAL_SEED = 100_000  # their first reset seed


def seed_suffix(seed: int) -> str:
    """"" for the held-out episodes, "_seed<seed>" for others: evaluations and their summaries keep apart."""
    return "" if seed == EVAL_SEED else f"_seed{seed}"


def result_file(seed: int, other: bool = False) -> str:
    """Where eval_policy.py writes an evaluation from episode seed `seed` (sim/compare.py reads it there)."""
    return f"eval{'_other_encoder' if other else ''}{seed_suffix(seed)}.json"


@dataclass
class EvalPolicyConfig:
    run: str = ""  # a run directory of train_policy.py (holds policy.json and actor.*)
    episodes: int = EVAL_EPISODES
    # episode i resets with seed + i (far from the training seeds). Another seed writes eval_seed<seed>.json and
    # leaves eval.json as it was: fresh episodes for a result no choice has seen (sim/compare.py confirm_seed)
    seed: int = EVAL_SEED
    videos: int = 0  # MP4s of the first N episodes in <run>/videos/
    camera: str = "wrist+third_person"  # camera(s) of the videos, '+'-joined side by side
    encoder_path: Optional[str] = None  # override the encoder path saved in the run (moved checkpoint)
    # evaluate on an export other than the one the policy was trained on (its fingerprint differs): the
    # result goes to eval_other_encoder.json, naming the export, and eval.json is left as it was
    allow_other_encoder: bool = False
    progress: bool = True


# the schema node leaves `algo` to the group (sim/conf/train_policy.yaml defaults to algo: dagger), whose nodes
# are the trainers' own settings classes (sim/trainers.py registers them)
ConfigStore.instance().store(name="train_policy_schema", node=replace(TrainPolicyConfig(), algo="???"))
ConfigStore.instance().store(name="eval_policy_schema", node=EvalPolicyConfig)


def check_choices(argv: list[str]) -> None:
    """ValueError (one line) for `task=`, `encoder=` or `algo=` overrides that name no valid choice."""
    valid = {"task": tuple(TASKS), "encoder": ENCODER_KINDS, "algo": tuple(TRAINERS)}
    for arg in argv:
        key, sep, value = arg.lstrip("+").partition("=")
        if sep and key in valid and value not in valid[key]:
            raise ValueError(f"unknown {key} {value!r}; valid: {', '.join(valid[key])}")


def check(cfg: TrainPolicyConfig) -> None:
    """Settings errors that need no env or checkpoint, as one-line ValueErrors."""
    check_choices([f"task={cfg.task}", f"encoder={cfg.encoder.kind}", f"algo={cfg.algo.name}"])
    if type(cfg.algo) is not trainer_of(cfg.algo.name).settings:
        raise ValueError(f"algo.name={cfg.algo.name} does not match the algo settings given ({type(cfg.algo).__name__}): "
                         f"choose the trainer with algo={cfg.algo.name}")
    if trainer_of(cfg.algo.name).one_process and cfg.vectorization != "sync":
        raise ValueError(f"algo={cfg.algo.name} runs its envs in one process (vectorization=sync): the feature provider is per env")
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
