"""What a policy is, as data (LeRobot's configuration_<name>.py; docs/design.md section 6).

A `PolicyConfig` holds everything that rebuilds a trained policy: the frozen encoder that makes
its features (`EncoderSpec`), MVP's actor sizes, which inputs and outputs are standardized, and
the observation/action contract it was trained under. The contract is written by whoever owned
the data (sim/env.py for sim runs, real/demo_layout.py for real demos) and read back by an
adapter where the policy is deployed (real/adapter.py), so a policy never guesses units.

`EncoderSpec` is the one shape of the frozen-encoder settings: sim's `encoder.*`, real BC's
`encoder.*`, the saved policy and the feature providers all use it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from encoder.frozen_base import DEFAULT_LAYER
from toto_robot.run_paths import encoder_export

POLICY_POOL = "grid4"  # a policy's default pooling of the frozen features (EncoderSpec.pool says why)
ENCODER_KINDS = ("toto", "mae", "random", "random_trunk", "state")
ENCODER_PATHS = {"mae": encoder_export("mae")}  # export of `python pretrain/run.py objective=mae`; others below
NORMALIZED = ("features", "proprio", "actions")


@dataclass
class EncoderSpec:
    """The frozen encoder a policy reads its features through."""

    # toto: frozen pre-trained Toto | mae: the MAE baseline (pretrain objective=mae) | random: Toto's architecture,
    # random tokenizer and transformer | random_trunk: the trained tokenizer, a random transformer | state: privileged state
    kind: str = "toto"
    path: str = encoder_export()  # the export of `python pretrain/run.py` (toto, random*); mae: ENCODER_PATHS
    layer: Any = DEFAULT_LAYER  # "mid", a fraction in (0, 1] or a block index (encoder.frozen_base.resolve_layer)
    # grid4 (4 x 4 regional averages) keeps where the cube is, which the paper's avg loses with a RoPE-only model
    # (docs/results.md has the measurements). avg: the paper's protocol (PAPER_POOL), one override away
    # attn: the paper's attentive pooling, trained with the actor and saved in model.safetensors; the
    # encoder hands it the mid-layer tokens averaged over 2 x 2 cells (ATTN_CELLS^2 = 64 tokens, a
    # quarter of the 16 x 16 grid, so a DAgger buffer of 49k frames fits in memory: 2.4 GB at nano)
    pool: str = POLICY_POOL
    dtype: Optional[str] = "auto"  # the transformer's dtype: auto (bf16 where native, toto_robot/compute.py) | fp32 | bf16
    device: str = "auto"  # where the encoder runs: auto|cpu|cuda|cuda:N (the actor is small and stays on the CPU)
    batch_size: int = 64  # frames per encoder call (memory, not results)
    seed: int = 0  # weights of the random encoder
    # set by the trainer, checked wherever the policy runs (policies.features.check_encoder): the content
    # hash of the export the features came from, and the precision they were computed in (not "auto")
    fingerprint: Optional[str] = None
    precision: Optional[str] = None

    def __post_init__(self):
        if self.kind not in ENCODER_KINDS:
            raise ValueError(f"encoder kind {self.kind!r}: use one of {ENCODER_KINDS}")
        if self.kind in ENCODER_PATHS and self.path == EncoderSpec.path:  # the Toto default would only be refused
            self.path = ENCODER_PATHS[self.kind]


ATTN_CELLS = 8  # pool=attn: the encoder's tokens are averaged to an 8 x 8 grid for the policy's attention pool


def provider_pool(pool: str) -> str:
    """The frozen encoder's pooling for a policy's `pool`: attn reads the tokens of an ATTN_CELLS grid."""
    return f"grid{ATTN_CELLS}" if pool == "attn" else pool


@dataclass
class PolicyConfig:
    """Everything `Policy(config)` needs; saved as the `config` of model.json."""

    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    feat_dim: int = 0
    proprio_dim: int = 0  # 0: the privileged-state actor (features alone)
    action_dim: int = 0
    embed_dim: int = 128  # MVP: image and proprio each projected to 128
    hidden: tuple[int, ...] = (256, 128, 64)
    bound: str = "tanh"  # policies.actor.BOUNDS: tanh (sim envs' [-1, 1]) | clip (a linear output)
    # standardized by the median-floored rule (policies.actor.feature_stats); features always,
    # proprio and actions where their scales differ by orders of magnitude (real joint deltas vs the gripper)
    normalize: tuple[str, ...] = ("features",)
    observation: dict = field(default_factory=dict)  # the contract: what `proprio` and the image are, in which units
    action: dict = field(default_factory=dict)  # the convention: names, units, bounds (low/high, None = unbounded)
    resolution: Optional[int] = None  # frames the encoder reads (None for the state policy)

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = EncoderSpec(**self.encoder)
        self.hidden, self.normalize = tuple(self.hidden), tuple(self.normalize)
        unknown = set(self.normalize) - set(NORMALIZED)
        if "features" not in self.normalize or unknown:
            raise ValueError(f"normalize={list(self.normalize)}: features and any of {NORMALIZED[1:]}")

    @property
    def attn_tokens(self) -> int:
        """Tokens the actor's trained attention pool reads (0: the features arrive pooled)."""
        return ATTN_CELLS**2 if self.encoder.pool == "attn" and self.encoder.kind != "state" else 0

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden), "normalize": list(self.normalize)}

    @classmethod
    def from_dict(cls, data: dict) -> PolicyConfig:
        """From a model.json's config; an unknown key is an error (check files with checkpoint.read_fields first)."""
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown PolicyConfig field(s) {unknown}")
        return cls(**data)
