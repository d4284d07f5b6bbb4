"""What a real-robot demo file holds, beyond the robomimic schema (toto_robot/demos.py).

Shared by the RPT importer (real/rpt_import.py), the demo recorder and BC (real/train_bc.py), so a
policy is deployed with the observation and action layout it was trained on (`RealLayout.contract`
is saved in the policy and read back by real/adapter.py):

    data/demo_<i>/obs/pixels   (T, R, R, 3) uint8: the hand camera through real.preprocess
    data/demo_<i>/obs/proprio  (T, 7|8) float32: 7 joint positions (rad) [+ 1 gripper value]
    data/demo_<i>/actions      (T, 8) float32: 7 joint deltas (rad, q[t+1] - q[t]) + gripper (1 closed, 0 open)
    data/demo_<i>/states       (T, 0): a real robot has no privileged state
    data.attrs["env_args"]     {"env_name": "real/franka", "type": 2, "env_kwargs": REAL KWARGS below}

env_kwargs: source, resolution R, preprocessing (real.preprocess.PREPROCESSING), gripper_obs
("closed_binary": RPT's 1 closed / 0 open, or "width_m": franky's finger width in metres),
action_mode ("joint_delta" as above, or "joint_position": absolute targets, turned into deltas
by BC) and control_hz (the rate the deltas are per step of, None if unknown).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from real.preprocess import PREPROCESSING

ENV_NAME = "real/franka"
NUM_JOINTS = 7
ACTION_DIM = NUM_JOINTS + 1
GRIPPER_OBS = ("closed_binary", "width_m")
ACTION_MODES = ("joint_delta", "joint_position")
# franky reports the Franka hand's finger width in metres: 0.08 fully open, the cube's width (~0.05)
# when holding it. A binary-trained policy reads "closed" below this width.
GRIPPER_CLOSED_BELOW_M = 0.07


@dataclass
class RealLayout:
    """The env_kwargs of a real demo file, checked."""

    resolution: int
    source: str = "unknown"
    preprocessing: dict = None
    gripper_obs: str = "width_m"
    action_mode: str = "joint_delta"
    control_hz: Optional[float] = None

    def __post_init__(self):
        if self.preprocessing is None:
            self.preprocessing = dict(PREPROCESSING)
        if self.gripper_obs not in GRIPPER_OBS:
            raise ValueError(f"gripper_obs={self.gripper_obs!r}: use one of {GRIPPER_OBS}")
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode={self.action_mode!r}: use one of {ACTION_MODES}")
        if self.preprocessing.get("name") != PREPROCESSING["name"]:
            raise ValueError(f"frames were preprocessed by {self.preprocessing.get('name')!r}, this code does "
                             f"{PREPROCESSING['name']!r}: re-import the demos")

    def contract(self, uses_gripper: bool) -> tuple[dict, dict]:
        """(observation, action) contract of a policy trained on these demos (policies.PolicyConfig)."""
        observation = {"source": "real_demos", "robot": "franka", "camera": "hand", "preprocessing": dict(self.preprocessing),
                       "proprio": [f"joint_{i + 1}" for i in range(NUM_JOINTS)] + (["gripper"] if uses_gripper else []),
                       "gripper_obs": self.gripper_obs, "gripper_closed_below_m": GRIPPER_CLOSED_BELOW_M}
        action = {"convention": "joint_delta", "names": [f"delta_joint_{i + 1}" for i in range(NUM_JOINTS)] + ["gripper_close"],
                  "low": [None] * NUM_JOINTS + [0.0], "high": [None] * NUM_JOINTS + [1.0], "control_hz": self.control_hz}
        return observation, action

    def env_args(self) -> dict:
        return {"env_name": ENV_NAME, "type": 2, "env_kwargs": asdict(self)}  # 2: robomimic's GYM_TYPE

    @classmethod
    def from_env_args(cls, env_args: dict, where: str = "") -> RealLayout:
        """The layout of a demo file; a file of sim demos or without one is a one-line ValueError."""
        kwargs = env_args.get("env_kwargs") or {}
        if env_args.get("env_name") != ENV_NAME or "resolution" not in kwargs:
            raise ValueError(f"{where}holds {env_args.get('env_name')!r} demos, not real-robot demos ({ENV_NAME}): import "
                             "them with python -m real.rpt_import or record them on the robot")
        known = {k: v for k, v in kwargs.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except ValueError as error:
            raise ValueError(f"{where}{error}") from None


def gripper_value(width: float, gripper_obs: str, closed_below: float = GRIPPER_CLOSED_BELOW_M) -> float:
    """The proprio gripper entry for a measured finger width (metres), in the layout's unit."""
    return float(width) if gripper_obs == "width_m" else float(width < closed_below)


def deltas_from_joints(joints: np.ndarray, gripper_next: np.ndarray) -> np.ndarray:
    """(T-1, 8) actions from T joint positions: q[t+1] - q[t], then the gripper target `gripper_next` (T-1,).

    The last sample of an episode has no next position, so it gets no action (callers drop it).
    """
    joints = np.asarray(joints, dtype=np.float32)
    return np.concatenate([np.diff(joints, axis=0), np.asarray(gripper_next, np.float32).reshape(-1, 1)], axis=1)


def read_layout(path: Path) -> tuple[RealLayout, list[int], list[bool]]:
    """(layout, samples per demo, success per demo) of a demo file; schema problems are one ValueError line."""
    import h5py

    from toto_robot.demos import validate  # (lazy: h5py)

    with h5py.File(path, "r") as f:
        validate(f, path)
        layout = RealLayout.from_env_args(json.loads(f["data"].attrs["env_args"]), f"{path} ")
        demos = [f["data"][n] for n in sorted(f["data"], key=lambda n: int(n.split("_")[1]))]
        return layout, [int(d.attrs["num_samples"]) for d in demos], [bool(d.attrs["success"]) for d in demos]


def episode_rows(features, proprio, actions, layout: RealLayout) -> dict[str, np.ndarray]:
    """One episode's training rows: (features, proprio, joint-delta actions), deriving deltas when needed.

    Files whose actions are absolute joint targets (action_mode "joint_position") or empty get
    deltas from consecutive joint positions, q[t+1] - q[t], with the gripper target taken from the
    file's gripper action (else the next gripper observation); each episode's last step is dropped.
    """
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
