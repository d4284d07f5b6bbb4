"""The one policy object (LeRobot's modeling_<name>.py; docs/design.md section 6).

    policy = Policy.from_pretrained("runs/policy/franka_pick_toto_dagger")   # a sim run, or a real BC run
    action = policy.select_action(observation)     # {"pixels": uint8 (B,H,W,3), "proprio": (B,P)} -> (B, A)

A policy is: the frozen encoder (built from `config.encoder` on first use), the feature
normalizer (inside MVP's actor: the median-floored rule of `feature_stats`), optional proprio and
action standardization (same rule), MVP's actor, and the action convention (`config.action`:
its bounds are applied by `act`). DAgger, BC (sim and real) and PPO all produce this object and
write it the same way: `model.safetensors` + `model.json` (kind "toto_policy"). Trainers regress
`forward(features, proprio)` onto `target(actions)`, both in standardized units.

A checkpoint of an earlier kind (`actor.*` of kind dagger_actor or real_bc_policy) is refused in
one line naming the converter, `python -m policies.convert <dir>`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from policies.actor import Actor, feature_stats
from policies.configuration import PolicyConfig
from policies.features import check_encoder, make_features
from toto_robot.checkpoint import CheckpointError, load_weights, read_fields, read_meta, save_weights

KIND = "toto_policy"
NAME = "model"  # model.safetensors + model.json
OLD_KINDS = ("dagger_actor", "real_bc_policy")


class Policy(nn.Module):
    """See the module docstring. `features` (a policies.features provider) skips building the encoder."""

    def __init__(self, config: PolicyConfig, features=None):
        super().__init__()
        self.config = config
        self.actor = Actor(config.feat_dim, config.proprio_dim, config.action_dim, embed_dim=config.embed_dim,
                           hidden=config.hidden, bound=config.bound, attn_tokens=config.attn_tokens)
        for name, dim in (("proprio", config.proprio_dim), ("action", config.action_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))
        low, high = (config.action.get(k) for k in ("low", "high"))
        self._low, self._high = _bounds(low, config.action_dim, -np.inf), _bounds(high, config.action_dim, np.inf)
        self._features = features
        self.allow_other_encoder = False  # from_pretrained(..., allow_other_encoder=True): run on an export it was not trained on

    @property
    def proprio_dim(self) -> int:
        return self.config.proprio_dim

    @property
    def features(self):
        """The feature provider (built from `config.encoder` on first use)."""
        if self._features is None:
            check_encoder(self.config.encoder, self.config.encoder.path, self.allow_other_encoder)
            features = make_features(self.config.encoder)
            resolution = getattr(getattr(features, "encoder", None), "resolution", None)
            if features.dim not in (None, self.config.feat_dim) or resolution != self.config.resolution:
                raise CheckpointError(f"the encoder at {self.config.encoder.path} gives {features.dim} features at {resolution} px, "
                                      f"the policy was trained on {self.config.feat_dim} at {self.config.resolution} px")
            self._features = features
        return self._features

    @torch.no_grad()
    def fit_stats(self, features, proprio=None, actions=None) -> None:
        """Set every standardization in `config.normalize` from training rows (N, dim)."""
        self.actor.set_feature_stats(features)
        for key, buffer, rows in (("proprio", "proprio", proprio), ("actions", "action", actions)):
            if key in self.config.normalize:
                mean, std = feature_stats(rows)
                getattr(self, f"{buffer}_mean").copy_(mean)
                getattr(self, f"{buffer}_std").copy_(std)

    def forward(self, features: torch.Tensor, proprio: torch.Tensor | None = None) -> torch.Tensor:
        """Training output, in standardized action units (the actor's raw output)."""
        if self.proprio_dim:
            if proprio is None:
                raise ValueError("this policy reads proprioception: pass proprio (B, proprio_dim)")
            proprio = (proprio - self.proprio_mean) / self.proprio_std
        return self.actor(features, proprio if self.proprio_dim else None)

    def target(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions in the units `forward` is trained to output."""
        return (actions - self.action_mean) / self.action_std

    @torch.no_grad()
    def act(self, features, proprio=None) -> np.ndarray:
        """Actions in the policy's convention, float32 (B, action_dim), from precomputed features."""
        f = torch.as_tensor(np.asarray(features, dtype=np.float32))
        p = None if proprio is None or not self.proprio_dim else torch.as_tensor(np.asarray(proprio, dtype=np.float32))
        action = (self(f, p) * self.action_std + self.action_mean).numpy()
        return np.clip(action, self._low, self._high).astype(np.float32)

    def select_action(self, observation: dict) -> np.ndarray:
        """observation dict (batched, or one observation without the batch axis) -> actions of the same batching."""
        key = self.features.key
        single = np.asarray(observation[key]).ndim == (3 if key == "pixels" else 1)
        obs = {k: np.asarray(v)[None] if single else np.asarray(v) for k, v in observation.items()}
        proprio = obs.get("proprio") if self.proprio_dim else None
        if self.proprio_dim and proprio is None:
            raise ValueError(f"this policy reads proprioception: the observation has {sorted(observation)}")
        if proprio is not None:
            rows = np.atleast_2d(proprio)
            if rows.ndim != 2 or rows.shape[1] != self.proprio_dim:
                raise ValueError(f"proprio must be ({self.proprio_dim},) or (batch, {self.proprio_dim}), "
                                 f"got shape {tuple(np.shape(observation['proprio']))}")
            if not np.isfinite(rows).all():
                raise ValueError("proprio holds NaN or inf: the policy would act on it; check the robot's state")
        action = self.act(self.features(obs), proprio)
        return action[0] if single else action

    def reset(self) -> None:
        """Start of an episode: nothing to clear (the policy is memoryless), kept for the interface."""

    def save_pretrained(self, directory, **extra) -> Path:
        """model.safetensors + model.json (atomic, JSON last); `extra` goes into the JSON (stats, settings)."""
        return save_weights(directory, NAME, self.state_dict(), kind=KIND, config=self.config.to_dict(), **extra)

    @classmethod
    def from_pretrained(cls, directory, *, encoder_path=None, dtype=None, device=None, features=None,
                        allow_other_encoder: bool = False) -> Policy:
        """The policy saved in `directory`. `encoder_path`, `dtype`, `device` override the saved encoder
        settings for *this* machine (a moved encoder; the training machine's precision says nothing of
        the robot PC's CPU). An export other than the one it was trained on (its content fingerprint) is
        refused unless `allow_other_encoder`. Missing, old or wrong files are one CheckpointError line."""
        path = Path(directory).expanduser()
        if not (path / f"{NAME}.json").is_file():
            if (path / "actor.json").is_file():
                kind = read_meta(path, "actor").get("kind")
                if kind in OLD_KINDS:
                    raise CheckpointError(f"{path} holds a {kind!r} checkpoint of an earlier version: convert it with "
                                          f"python -m policies.convert {path}")
            raise CheckpointError(f"no policy at {path} (model.safetensors + model.json): train one with "
                                  "python sim/train_policy.py or python real/train_bc.py")
        state, meta = load_weights(path, NAME, kind=KIND)
        where = f"{path / NAME}.json"
        try:
            config = PolicyConfig.from_dict(read_fields(meta.get("config"), PolicyConfig, where))
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{where}: {str(error).splitlines()[0]}") from None
        for key, value in (("path", encoder_path), ("dtype", dtype), ("device", device)):
            if value:
                setattr(config.encoder, key, str(value))
        policy = cls(config, features=features)
        policy.allow_other_encoder = allow_other_encoder
        try:
            policy.load_state_dict(state)
        except RuntimeError as error:
            lines = str(error).splitlines()  # torch's first line is a header; the second names the tensor
            raise CheckpointError(f"{path / NAME}.safetensors does not match {where} ({lines[min(1, len(lines) - 1)].strip()})") from None
        policy.meta = meta
        return policy.eval()


def _bounds(value, dim: int, default: float) -> np.ndarray:
    """Per-dimension bounds from a scalar, a list (None = unbounded) or None."""
    if value is None:
        return np.full(dim, default, np.float32)
    values = value if isinstance(value, (list, tuple)) else [value] * dim
    return np.array([default if v is None else v for v in values], np.float32)
