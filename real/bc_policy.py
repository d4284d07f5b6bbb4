"""A trained BC policy as the policy node runs it: raw hand-camera frame + joint state -> action (8,).

    policy = load_bc_policy("runs/real_bc")           # a checkpoint written by python real/train_bc.py
    action = policy.act(frame, joint_positions, gripper_width)   # (8,) float32

`act` repeats training's input path exactly: real.preprocess.preprocess_frame (the crop and resize
the demos were imported with), the same frozen encoder (path, layer, pool, dtype from the
checkpoint), the proprio layout (7 joints [+ gripper in the unit the demos used]) and the
standardization statistics of the training data. The action is 7 joint-position deltas (rad, per
step at the demos' control_hz) + a gripper command in [0, 1] (close above 0.5); the franka node's
safety envelope, not this class, bounds what is executed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from real.demo_layout import NUM_JOINTS, gripper_value
from real.preprocess import PREPROCESSING, preprocess_frame

KIND = "real_bc_policy"  # the `kind` in actor.json
GRIPPER_CLOSE_ABOVE = 0.5
TRAIN_HINT = "train one with python real/train_bc.py data=<demos.hdf5> out=<dir>"


class BCPolicy:
    """The frozen encoder + the BC actor + the checkpoint's layout and normalization (see the module docstring)."""

    def __init__(self, encoder, actor, meta: dict):
        self.encoder, self.actor, self.meta = encoder, actor.eval(), meta
        self.resolution = int(meta["encoder"]["resolution"])
        self.layout = meta["layout"]
        n = {k: np.asarray(v, np.float32) for k, v in meta["normalization"].items()}
        self.proprio_mean, self.proprio_std, self.action_mean, self.action_std = (
            n["proprio_mean"], n["proprio_std"], n["action_mean"], n["action_std"])

    @property
    def uses_gripper(self) -> bool:
        return self.actor.proprio_dim > NUM_JOINTS

    def features(self, frame) -> np.ndarray:
        """(1, feature_dim) float32 features of one raw uint8 (H, W, 3) hand-camera frame."""
        return self.encoder(preprocess_frame(frame, self.resolution)[None]).float().cpu().numpy()

    def proprio(self, joint_positions, gripper_width=None) -> np.ndarray:
        """(proprio_dim,) float32, unstandardized: joint positions [+ the gripper in the demos' unit]."""
        q = np.asarray(joint_positions, dtype=np.float32).reshape(-1)
        if q.shape != (NUM_JOINTS,) or not np.isfinite(q).all():
            raise ValueError(f"joint_positions must be {NUM_JOINTS} finite values, got {np.asarray(joint_positions).tolist()}")
        if not self.uses_gripper:
            return q
        if gripper_width is None or not np.isfinite(gripper_width):
            raise ValueError(f"this policy reads the gripper: pass a finite gripper_width in metres, got {gripper_width}")
        g = gripper_value(gripper_width, self.layout["gripper_obs"], self.layout["gripper_closed_below_m"])
        return np.append(q, np.float32(g))

    @torch.no_grad()
    def act(self, frame, joint_positions, gripper_width=None) -> np.ndarray:
        """Raw uint8 camera frame, 7 joint positions (rad), gripper width (m) -> (8,) float32 action."""
        proprio = (self.proprio(joint_positions, gripper_width) - self.proprio_mean) / self.proprio_std
        out = self.actor(torch.from_numpy(self.features(frame)), torch.from_numpy(proprio[None].astype(np.float32)))
        action = out[0].numpy() * self.action_std + self.action_mean
        action[NUM_JOINTS] = np.clip(action[NUM_JOINTS], 0.0, 1.0)
        return action.astype(np.float32)


def load_bc_policy(path, encoder_path=None, dtype="auto", device="auto") -> BCPolicy:
    """The policy saved in `path` (actor.safetensors + actor.json). `encoder_path` overrides the saved
    encoder location (a moved checkpoint); `dtype` and `device` are the encoder's on *this* machine
    (auto: toto_robot/compute.py; the training machine's choice says nothing about the robot PC's CPU).
    Missing or wrong files are one CheckpointError line saying what to pass."""
    from policies import Actor
    from toto_robot import load_encoder
    from toto_robot.checkpoint import CheckpointError, load_weights

    directory = Path(path).expanduser()
    if not (directory / "actor.json").is_file():
        raise CheckpointError(f"no BC policy at {directory} (actor.safetensors + actor.json): {TRAIN_HINT}")
    state, meta = load_weights(directory, "actor", kind=KIND)
    if meta.get("preprocessing", {}).get("name") != PREPROCESSING["name"]:
        raise CheckpointError(f"{directory} was trained on frames preprocessed by {meta.get('preprocessing')}, "
                              f"this code does {PREPROCESSING['name']!r}: retrain it")
    enc = meta["encoder"]
    source = encoder_path or enc["path"]
    try:
        encoder = load_encoder(source, layer=enc["layer"], pool=enc["pool"], dtype=dtype, device=device)
    except CheckpointError as error:
        raise CheckpointError(f"the encoder of the policy in {directory} is unavailable: {error} "
                              "(or pass load_bc_policy(..., encoder_path=<encoder dir>))") from None
    if encoder.feature_dim != meta["config"]["feat_dim"] or encoder.resolution != enc["resolution"]:
        raise CheckpointError(f"the encoder at {source} gives {encoder.feature_dim} features at {encoder.resolution} px, the "
                              f"policy in {directory} was trained on {meta['config']['feat_dim']} at {enc['resolution']} px")
    actor = Actor(**{**meta["config"], "hidden": tuple(meta["config"]["hidden"])})
    actor.load_state_dict(state)
    return BCPolicy(encoder, actor, meta)

