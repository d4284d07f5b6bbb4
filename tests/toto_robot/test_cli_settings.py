"""Every hydra entry point checks the composed config against its schema: a key outside it is one
line naming the key and the closest valid ones, also when written with `+` (hydra's own hint)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_errors import one_line_error

ROOT = Path(__file__).resolve().parents[2]
# entry point, a misspelt key, the key it should suggest
CASES = [
    ("pretrain.run", "+train.stpes=2", "train.steps"),
    ("sim.train_policy", "+algo.rouns=1", "algo.rounds"),
    ("sim.eval_policy", "+episods=3", "episodes"),
    ("sim.compare", "+seds=[0]", "seeds"),
    ("sim.record", "+episdes=2", "episodes"),
    ("encoder.probe", "+encodr=x", "encoder"),
    ("encoder.track", "+propagation.tempreature=0.1", "propagation.temperature"),
    ("real.train_bc", "+epochz=2", "epochs"),
]


@pytest.mark.parametrize("module,override,suggested", CASES)
def test_a_misspelt_key_with_plus_is_one_line_naming_the_closest(module, override, suggested, tmp_path):
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, "-m", module, override, f"hydra.run.dir={tmp_path}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    line = one_line_error(done)
    assert f"unknown setting {override.lstrip('+').split('=')[0]}" in line and suggested in line


def test_documented_dictionaries_stay_open():
    from omegaconf import OmegaConf

    from sim.compare import CompareConfig
    from toto_robot.cli import settings, unknown_keys

    cfg = OmegaConf.merge(OmegaConf.structured(CompareConfig), {"variants": {"mine": ["train.lr=1e-3"]}})
    assert unknown_keys(cfg) == [] and settings(cfg).variants == {"mine": ["train.lr=1e-3"]}
