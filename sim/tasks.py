"""Backend-independent task definitions: what each task is, its options, and its success rule.

Nothing here imports MuJoCo, so another backend (e.g. Isaac Gym) can implement the same tasks
with the same observation/action spaces and success semantics (MVP's, docs/design.md section 9).
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields, make_dataclass

PICK = "pick"
CABINET = "cabinet"

OBS_KEYS = ("pixels", "proprio", "state")
CAMERAS = ("wrist", "third_person")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    robot: str  # key of sim.robots.ROBOTS
    kind: str  # PICK or CABINET
    env_id: str  # gymnasium id


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("franka_pick", "franka", PICK, "toto_robot/FrankaPick-v0"),
        TaskSpec("franka_cabinet", "franka", CABINET, "toto_robot/FrankaCabinet-v0"),
        TaskSpec("kuka_pick", "kuka", PICK, "toto_robot/KukaPick-v0"),
        TaskSpec("kuka_cabinet", "kuka", CABINET, "toto_robot/KukaCabinet-v0"),
    )
}


def get_task(name: str) -> TaskSpec:
    """Look a task up by name ('franka_pick') or gymnasium id; unknown names list the valid ones."""
    for spec in TASKS.values():
        if name in (spec.name, spec.env_id):
            return spec
    raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")


@dataclass(frozen=True)
class EnvConfig:
    """Options of every task env. Times are in seconds, distances in metres, angles in radians."""

    obs_mode: str = "pixels+proprio+state"  # '+'-joined subset of OBS_KEYS
    image_size: int = 128  # square images; 128 or 224 as in the paper and MVP, any size works
    camera: str = "wrist"  # camera of the `pixels` key: wrist (on the hand, as MVP) or third_person
    control_hz: float = 20.0
    episode_seconds: float = 8.0
    physics_timestep: float = 0.002
    init_joint_noise: float = 0.125  # uniform +- around the home pose, arm joints
    success_hold_steps: int = 10  # goal condition held this many consecutive control steps
    terminate_on_success: bool = True
    # pick
    lift_height: float = 0.3  # goal height of the cube centre above the table
    goal_tolerance: float = 0.1  # success: cube within this distance of the goal height
    # cabinet
    open_distance: float = 0.2  # success: drawer opened at least this far

    def __post_init__(self) -> None:
        keys = self.obs_keys
        if not keys or any(k not in OBS_KEYS for k in keys):
            raise ValueError(f"obs_mode {self.obs_mode!r}: use '+'-joined keys from {OBS_KEYS}")
        if self.camera not in CAMERAS:
            raise ValueError(f"camera {self.camera!r}: valid cameras are {CAMERAS}")
        if self.image_size < 16:
            raise ValueError(f"image_size {self.image_size} is too small (minimum 16)")
        if self.control_hz <= 0 or self.episode_seconds <= 0:
            raise ValueError("control_hz and episode_seconds must be positive")
        substeps = (1.0 / self.control_hz) / self.physics_timestep
        if substeps < 1 or abs(substeps - round(substeps)) > 1e-6:
            raise ValueError(
                f"control period 1/{self.control_hz} s is not a whole number of physics steps of {self.physics_timestep} s"
            )

    @property
    def obs_keys(self) -> tuple[str, ...]:
        return tuple(k for k in self.obs_mode.split("+") if k)

    @property
    def substeps(self) -> int:
        return int(round((1.0 / self.control_hz) / self.physics_timestep))

    @property
    def max_steps(self) -> int:
        return int(round(self.episode_seconds * self.control_hz))

    @classmethod
    def from_kwargs(cls, **kwargs) -> "EnvConfig":
        """Build from keyword options; an unknown option is an error naming the valid ones."""
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - valid)
        if unknown:
            raise ValueError(f"unknown env option(s) {unknown}; valid options: {sorted(valid)}")
        return cls(**kwargs)


CALLER_OWNED = ("obs_mode", "image_size", "camera")  # set by the entry point itself, not by `env.*`
# Every other EnvConfig option as a typed `env.<option>=` override of an entry point's hydra
# config (sim/record.py, sim/train_policy.py), so a misspelt option is a hydra error.
_hints = typing.get_type_hints(EnvConfig)
EnvOptions = make_dataclass(
    "EnvOptions", [(f.name, _hints[f.name], field(default=f.default)) for f in fields(EnvConfig) if f.name not in CALLER_OWNED]
)
