"""A tiny behaviour-cloned policy for node and loop tests: a 32 px random encoder and a BC head
fitted for 3 epochs on synthetic RPT-convention episodes (tests/real/synthetic_demos.py)."""
from __future__ import annotations

from pathlib import Path

from real.rpt_import import import_rpt
from real.train_bc import EncoderSettings, TrainBCConfig, train
from tests.encoder.conftest import make_encoder_dir
from tests.real.synthetic_demos import write_episodes


def tiny_bc_checkpoint(tmp: Path) -> Path:
    """Train it under `tmp`; returns the run directory the policy node loads."""
    encoder = make_encoder_dir(tmp / "encoder")
    import_rpt(write_episodes(tmp / "rpt", 4, steps=8)[0].parent, tmp / "demos.hdf5", resolution=32)
    train(TrainBCConfig(data=str(tmp / "demos.hdf5"), out=str(tmp / "run"), epochs=3, val_every=3, val_fraction=0.25,
                        progress=False, encoder=EncoderSettings(path=str(encoder), dtype=None)))
    return tmp / "run"
