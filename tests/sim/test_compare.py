"""sim/compare.py: every (task, encoder, seed) trained and evaluated alike, one plot, pooled summaries, resume."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli_errors import one_line_error

ROOT = Path(__file__).resolve().parents[2]


def cli(*overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, "sim/compare.py", *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_compare_runs_encoders_on_the_same_seeds_and_resumes(tmp_path):
    from tests.encoder.conftest import make_encoder_dir

    encoder = make_encoder_dir(tmp_path / "enc")  # 32 px frames
    out = tmp_path / "cmp"
    args = ("encoders=[random,state]", "seeds=[0,1]", "rounds=2", "steps_per_round=64", "num_envs=2",
            "eval_episodes=2", "episodes=2", f"encoder_path={encoder}", 'extra=["algo.epochs=1","videos=0"]', f"out={out}")
    done = cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(p.name for p in out.iterdir() if p.is_dir() and (p / "policy.json").is_file())
    assert runs == ["franka_pick_random_s0", "franka_pick_random_s1", "franka_pick_state_s0", "franka_pick_state_s1"]
    for run in runs:
        settings = json.loads((out / run / "policy.json").read_text())
        assert (settings["algo"]["rounds"], settings["algo"]["steps_per_round"], settings["num_envs"]) == (2, 64, 2)
        assert settings["seed"] == int(run[-1]) and settings["algo"]["epochs"] == 1
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())["runs"]
    assert [(r["encoder"], r["episodes"], r["seeds"]) for r in summary] == [("random", 4, [0, 1]), ("state", 4, [0, 1])]
    for row in summary:
        evals = [json.loads((out / f"franka_pick_{row['encoder']}_s{s}" / "eval.json").read_text()) for s in (0, 1)]
        assert row["successes"] == sum(e["successes"] for e in evals)
        assert row["ci95"][0] <= row["success_rate"] <= row["ci95"][1]
    assert "| franka_pick | state |" in (out / "summary.md").read_text()
    stamp = (out / "franka_pick_state_s0" / "model.safetensors").stat().st_mtime_ns
    again = cli(*args)  # everything finished: reused, not redone
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "franka_pick_state_s0" / "model.safetensors").stat().st_mtime_ns == stamp
    assert "evaluating" not in again.stdout


def test_bad_settings_are_one_line(tmp_path):
    for override, expected in (("tasks=[franka_pik]", "unknown task 'franka_pik'"),
                               ("encoders=[dino]", "unknown encoder 'dino'"),
                               ('extra=["seed=3"]', "seed is set by the comparison")):
        assert expected in one_line_error(cli(override, f"out={tmp_path / 'x'}"))
