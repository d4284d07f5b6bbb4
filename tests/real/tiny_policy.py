"""Tiny trained policies for node and loop tests, both with a 32 px random encoder: a BC head fitted
for 3 epochs on synthetic RPT-convention episodes (tests/real/synthetic_demos.py), and a sim
franka_pick policy from sim/train_policy.py."""
from __future__ import annotations

from pathlib import Path

from policies import EncoderSpec
from real.rpt_import import import_rpt
from real.train_bc import TrainBCConfig, train
from tests.encoder.conftest import make_encoder_dir
from tests.real.synthetic_demos import write_episodes


def tiny_bc_checkpoint(tmp: Path) -> Path:
    """Train it under `tmp`; returns the run directory the policy node loads."""
    encoder = make_encoder_dir(tmp / "encoder")
    import_rpt(write_episodes(tmp / "rpt", 4, steps=8)[0].parent, tmp / "demos.hdf5", resolution=32)
    train(TrainBCConfig(data=str(tmp / "demos.hdf5"), out=str(tmp / "run"), epochs=3, val_every=3, val_fraction=0.25,
                        progress=False, encoder=EncoderSpec(pool="avg", path=str(encoder), dtype=None)))
    return tmp / "run"


def tiny_sim_checkpoint(tmp: Path) -> Path:
    """A franka_pick policy from `python sim/train_policy.py`'s train(): BC on 40 steps of wrist pixels
    through a 32 px random encoder; returns the run directory."""
    from sim.policy_config import TrainPolicyConfig
    from sim.trainers import BCSettings
    from sim.train_policy import train as train_sim

    encoder = make_encoder_dir(tmp / "encoder")
    cfg = TrainPolicyConfig(encoder=EncoderSpec(kind="toto", path=str(encoder), dtype=None, pool="avg"), eval_episodes=0,
                            videos=0, num_envs=1, out=str(tmp / "sim_run"), progress=False)
    cfg.algo = BCSettings(steps_per_round=40, epochs=1)
    train_sim(cfg)
    return tmp / "sim_run"
