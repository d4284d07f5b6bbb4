"""Observation adapters: what the robot measures -> what a policy was trained on, and its action -> the robot's.

    policy = load_robot_policy("runs/real_bc")       # any policies.Policy: trained on real demos or in sim
    action = policy.act(frame, joint_positions, gripper_width, joint_velocities)   # (8,) float32

The policy itself (`policies.Policy.from_pretrained`) is the same object sim evaluates; this file is
the only robot-specific code between it and the policy node. Which adapter applies is read from the
contract the trainer saved with the policy (`config.observation` / `config.action`):

- real demos (real/demo_layout.py, `joint_delta`): the hand-camera frame through real.preprocess
  (the crop and resize the demos were imported with), 7 joint positions [+ the gripper in the unit
  the demos used]; the action is already 7 joint deltas (rad per step) + a gripper command in [0, 1].
- a sim Franka policy (sim/env.py, `scaled_joint_delta`): the same frame path; proprio is sim's
  (9 joint positions, the fingers at half the measured width each, scaled to [-1, 1] by the sim's
  joint ranges, then 0.1 x velocities); the action's 7 arm values times the sim's per-step scale
  are the joint deltas, and the gripper closes while the policy drives the fingers closed (their
  mean action below 0). Sim-to-real transfer of the image features is not claimed: the plumbing is.

Any other contract (a Kuka policy, the privileged-state policy) is one CheckpointError line.
The franka node's safety envelope, not this file, bounds what is executed.
"""
from __future__ import annotations

import numpy as np

from real.demo_layout import NUM_JOINTS, gripper_value
from real.preprocess import PREPROCESSING, preprocess_frame
from toto_robot.checkpoint import CheckpointError

TRAIN_HINT = "train one with python real/train_bc.py data=<demos.hdf5> out=<dir> (or python sim/train_policy.py task=franka_pick)"


class DemoAdapter:
    """A policy trained on real demos: proprio and action in the demos' own layout."""

    def __init__(self, config):
        self.observation_spec, self.uses_gripper = config.observation, config.proprio_dim > NUM_JOINTS
        if self.observation_spec.get("preprocessing", {}).get("name") != PREPROCESSING["name"]:
            raise ValueError(f"the policy was trained on frames preprocessed by {self.observation_spec.get('preprocessing')}, "
                             f"this code does {PREPROCESSING['name']!r}: retrain it")

    def proprio(self, q: np.ndarray, width, dq) -> np.ndarray:
        if not self.uses_gripper:
            return q
        spec = self.observation_spec
        return np.append(q, np.float32(gripper_value(width, spec["gripper_obs"], spec["gripper_closed_below_m"])))

    def action(self, action: np.ndarray) -> np.ndarray:
        return action


class SimFrankaAdapter:
    """A policy trained in sim on the Franka (sim/env.py's proprio and scaled joint-delta actions)."""

    uses_gripper = True

    def __init__(self, config):
        obs, act = config.observation, config.action
        self.lower, self.upper = np.asarray(obs["lower"], np.float64), np.asarray(obs["upper"], np.float64)
        self.velocity_scale, self.bound = float(obs["velocity_scale"]), np.asarray(obs["proprio_bound"], np.float32)
        self.scale = np.asarray(act["scale"], np.float32)
        if len(self.lower) != NUM_JOINTS + 2 or len(self.scale) != NUM_JOINTS + 2:
            raise ValueError(f"a sim Franka policy has 9 joints (7 arm + 2 fingers), this one {len(self.lower)}")

    def proprio(self, q: np.ndarray, width, dq) -> np.ndarray:
        position = np.r_[q, width / 2.0, width / 2.0]
        velocity = np.r_[np.zeros(NUM_JOINTS) if dq is None else dq, 0.0, 0.0]
        scaled = (position - self.lower) * (2.0 / (self.upper - self.lower)) - 1.0
        return np.clip(np.r_[scaled, self.velocity_scale * velocity], -self.bound, self.bound).astype(np.float32)

    def action(self, action: np.ndarray) -> np.ndarray:
        deltas = action[:NUM_JOINTS] * self.scale[:NUM_JOINTS]
        return np.r_[deltas, np.float32(action[NUM_JOINTS:].mean() < 0.0)].astype(np.float32)


def adapter_for(config):
    """The adapter of a policy's saved contract; ValueError (one line) when the Franka cannot run it."""
    obs, act = config.observation, config.action
    if config.encoder.kind == "state":
        raise ValueError("the policy reads the privileged sim state, which a real robot does not have")
    if obs.get("source") == "real_demos" and act.get("convention") == "joint_delta":
        return DemoAdapter(config)
    if obs.get("source") == "sim" and act.get("convention") == "scaled_joint_delta":
        if obs.get("robot") != "franka":
            raise ValueError(f"the policy was trained on the sim {obs.get('robot')}, this stack drives a Franka")
        return SimFrankaAdapter(config)
    raise ValueError(f"the policy's contract ({obs.get('source', 'unknown')} observations, {act.get('convention', 'unknown')} "
                     "actions) has no adapter to the Franka: retrain it with this version")


class RobotPolicy:
    """A `policies.Policy` with its adapter: raw frame + joint state + gripper width -> (8,) action."""

    def __init__(self, policy):
        self.policy, self.adapter = policy, adapter_for(policy.config)
        self.uses_gripper = self.adapter.uses_gripper
        self.layout = {"control_hz": policy.config.action.get("control_hz")}

    @property
    def encoder(self):
        return self.policy.features.encoder

    def observation(self, frame, joint_positions, gripper_width=None, joint_velocities=None) -> dict:
        """The policy's observation dict of one robot reading (unbatched)."""
        q = np.asarray(joint_positions, dtype=np.float32).reshape(-1)
        if q.shape != (NUM_JOINTS,) or not np.isfinite(q).all():
            raise ValueError(f"joint_positions must be {NUM_JOINTS} finite values, got {np.asarray(joint_positions).tolist()}")
        if self.uses_gripper and (gripper_width is None or not np.isfinite(gripper_width)):
            raise ValueError(f"this policy reads the gripper: pass a finite gripper_width in metres, got {gripper_width}")
        dq = None
        if joint_velocities is not None and len(joint_velocities) == NUM_JOINTS:
            dq = np.asarray(joint_velocities, dtype=np.float32)
        pixels = preprocess_frame(frame, self.policy.config.resolution)
        return {"pixels": pixels, "proprio": self.adapter.proprio(q, gripper_width, dq).astype(np.float32)}

    def act(self, frame, joint_positions, gripper_width=None, joint_velocities=None) -> np.ndarray:
        """Raw uint8 camera frame, 7 joint positions (rad), gripper width (m) -> (8,) float32:
        7 joint deltas (rad per step) + a gripper command in [0, 1] (close above 0.5)."""
        observation = self.observation(frame, joint_positions, gripper_width, joint_velocities)
        return self.adapter.action(self.policy.select_action(observation)).astype(np.float32)


def load_robot_policy(path, encoder_path=None, dtype="auto", device="auto") -> RobotPolicy:
    """The policy saved in `path` (any trainer), adapted to the Franka. `dtype`/`device` are the encoder's on
    *this* machine (toto_robot/compute.py). A missing, old or unusable checkpoint or encoder is one CheckpointError line."""
    from policies import Policy  # (lazy: gymnasium, torch)

    policy = Policy.from_pretrained(path, encoder_path=encoder_path, dtype=dtype, device=device)  # its errors say what to train
    try:
        robot_policy = RobotPolicy(policy)
        policy.features  # noqa: B018  build the encoder now, not at the first frame
    except CheckpointError:
        raise
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from None
    return robot_policy
