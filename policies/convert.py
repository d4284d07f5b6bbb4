"""Convert a policy checkpoint of an earlier version into today's one kind (policies/policy.py).

    python -m policies.convert runs/policy/franka_pick_toto_dagger     # a sim run: actor.* of kind dagger_actor
    python -m policies.convert runs/real_bc                            # real BC: actor.* of kind real_bc_policy
    python -m policies.convert <dir> --encoder-path runs/pretrain/encoder   # the encoder has moved

Before one policy object existed, sim runs (DAgger, BC, PPO) wrote `actor.*` of kind
"dagger_actor" and real BC wrote `actor.*` of kind "real_bc_policy", each with its own loader.
This writes `model.safetensors` + `model.json` (kind "toto_policy") beside them, with the same
weights and statistics, so `Policy.from_pretrained(dir)` loads the run; the old files are left
as they were. The encoder spec of a sim run comes from its policy.json (train_policy.py's
settings). A sim run's env contract was not saved by that version, so the converted policy runs
in sim (eval_policy.py, resumed training) but the robot's adapter refuses it; retrain to deploy.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from policies.configuration import EncoderSpec, PolicyConfig
from policies.policy import NAME, Policy
from toto_robot.checkpoint import load_weights, read_meta

ACTOR_KEYS = ("feat_dim", "proprio_dim", "action_dim", "embed_dim", "hidden", "bound")


def _resolution(spec: EncoderSpec) -> int | None:
    if spec.kind == "state":
        return None
    if not (Path(spec.path).expanduser() / "toto.json").is_file():
        raise ValueError(f"the policy's encoder {spec.path} is not there: pass --encoder-path <encoder dir>")
    return int(read_meta(Path(spec.path).expanduser(), "toto")["resolution"])


def _sim_config(directory: Path, meta: dict, encoder_path: str | None) -> tuple[PolicyConfig, dict]:
    settings = directory / "policy.json"
    if not settings.is_file():
        raise ValueError(f"{directory} has no policy.json (the settings of python sim/train_policy.py): cannot tell its encoder")
    encoder = dict(json.loads(settings.read_text())["encoder"])
    encoder["kind"] = encoder.pop("name", encoder.get("kind", "toto"))
    spec = EncoderSpec(**{k: v for k, v in encoder.items() if k in EncoderSpec.__dataclass_fields__})
    spec.path = encoder_path or spec.path
    config = PolicyConfig(encoder=spec, **{k: meta["config"][k] for k in ACTOR_KEYS}, observation={"source": "sim"},
                          action={"low": -1.0, "high": 1.0}, resolution=_resolution(spec))
    return config, {}


def _real_config(meta: dict, encoder_path: str | None) -> tuple[PolicyConfig, dict]:
    enc, layout = meta["encoder"], meta["layout"]
    spec = EncoderSpec(**{k: v for k, v in enc.items() if k in EncoderSpec.__dataclass_fields__})
    spec.path = encoder_path or spec.path
    joints = sum(name.startswith("joint_") for name in layout["proprio"])
    observation = {"source": "real_demos", "robot": "franka", "camera": "hand", "preprocessing": meta["preprocessing"],
                   "proprio": layout["proprio"], "gripper_obs": layout["gripper_obs"],
                   "gripper_closed_below_m": layout["gripper_closed_below_m"]}
    action = {"convention": layout["action_mode"], "names": layout["action"], "low": [None] * joints + [0.0],
              "high": [None] * joints + [1.0], "control_hz": layout["control_hz"]}
    config = PolicyConfig(encoder=spec, **{k: meta["config"][k] for k in ACTOR_KEYS}, normalize=("features", "proprio", "actions"),
                          observation=observation, action=action, resolution=int(enc["resolution"]))
    norm = meta["normalization"]
    buffers = {f"{name}_{stat}": norm[f"{name}_{stat}"] for name in ("proprio", "action") for stat in ("mean", "std")}
    return config, buffers


def convert(directory, encoder_path: str | None = None) -> Path:
    """Write model.* (kind toto_policy) from the old actor.* in `directory`; return the directory."""
    import torch


    directory = Path(directory).expanduser()
    if (directory / f"{NAME}.json").is_file():
        raise ValueError(f"{directory} already holds a {NAME}.json policy: nothing to convert")
    state, meta = load_weights(directory, "actor")
    kind = meta.get("kind")
    if kind == "dagger_actor":
        config, buffers = _sim_config(directory, meta, encoder_path)
    elif kind == "real_bc_policy":
        config, buffers = _real_config(meta, encoder_path)
    else:
        raise ValueError(f"{directory}/actor.json is of kind {kind!r}, not dagger_actor or real_bc_policy")
    policy = Policy(config)
    policy.actor.load_state_dict(state)
    for name, values in buffers.items():
        getattr(policy, name).copy_(torch.tensor(values, dtype=torch.float32))
    extra = {k: v for k, v in meta.items() if k not in ("kind", "config", "encoder", "layout", "normalization", "preprocessing")}
    policy.save_pretrained(directory, converted_from=kind, **extra)
    return directory


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m policies.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="a run directory holding actor.safetensors + actor.json")
    parser.add_argument("--encoder-path", default=None, help="where the policy's encoder is now (default: the saved path)")
    args = parser.parse_args(argv)
    try:
        out = convert(args.directory, args.encoder_path)
    except (ValueError, OSError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(f"{out}: model.safetensors + model.json written (load with policies.Policy.from_pretrained)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
