"""python -m toto_robot.main_job on tiny settings: every stage runs as its entry point, the report has the figures,
and a rerun reuses the finished stages."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.pretrain.test_run import TINY_OVERRIDES

ROOT = Path(__file__).resolve().parents[1]


def test_main_job_end_to_end_on_tiny_settings(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    args = [sys.executable, "-m", "toto_robot.main_job", f"--out={tmp_path / 'main'}", f"--pretrain-out={tmp_path / 'pre'}",
            "--rounds=2", "--steps-per-round=64", "--num-envs=2", "--eval-episodes=2", "--videos=1",
            *(f"--pretrain-arg={o}" for o in (*TINY_OVERRIDES, f"data.cache_dir={tmp_path / 'cache'}")),
            "--policy-arg=eval_episodes=2", "--policy-arg=algo.epochs=1", "--policy-arg=videos=0", "--policy-arg=progress=false"]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for index in range(1, 5):
        assert f"==> [{index}/4]" in done.stdout
    main = tmp_path / "main"
    report = (main / "REPORT.md").read_text()
    result = json.loads((main / "franka_pick_toto_dagger" / "eval.json").read_text())
    assert result["episodes"] == 2 and f"{result['successes']}/2" in report
    assert "| 1 | 0.500 | 128 |" in report  # round 1: beta 0.5, 128 env steps
    assert "- Toto (patches in, the next patch's code out: objective=patch_dvae): 2 steps" in report  # the default objective
    for name in ("loss_curve.png", "success_curve.png"):
        assert f"]({name})" in report and (main / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((main / "franka_pick_toto_dagger" / "policy.json").read_text())["encoder"]["pool"] == "grid4"
    assert (main / "franka_pick_toto_dagger" / "videos" / "eval_0.mp4").stat().st_size > 0
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "2 rounds (2 resumed)" in again.stdout, again.stderr[-3000:]


def test_bad_stage_settings_stop_with_the_stage_named(tmp_path):
    done = subprocess.run([sys.executable, "-m", "toto_robot.main_job", f"--out={tmp_path}", f"--pretrain-out={tmp_path / 'pre'}",
                           "--pretrain-arg=model=huge"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "stage 1 (pre-training" in done.stderr and "Traceback" not in done.stderr
