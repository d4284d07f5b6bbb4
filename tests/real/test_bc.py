"""real/train_bc.py end to end on imported synthetic RPT episodes with a 32 px random encoder: outputs,
held-out MSE below the untrained actor's, a rerun that reuses the cached features, the robot's
`load_robot_policy` acting exactly as preprocess + encoder + standardized actor by hand, bad inputs as one line (exit code 2), and
training from a directory of the recorder node's episode files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from policies import EncoderSpec, Policy
from policies.bc import split_episodes
from real.adapter import load_robot_policy
from real.demo_layout import RealLayout, episode_rows, read_layout
from real.nodes.recorder import episode_demo
from real.preprocess import preprocess_frame
from real.rpt_import import import_rpt
from real.train_bc import TrainBCConfig, train
from tests.encoder.conftest import make_encoder_dir
from tests.real.synthetic_demos import write_episodes
from toto_robot import load_encoder
from toto_robot.checkpoint import CheckpointError
from toto_robot.demos import write_demo_file

ROOT = Path(__file__).resolve().parents[2]
TINY = ("epochs=30", "val_every=10", "val_fraction=0.34", "encoder.dtype=null", "progress=false")


def cli(*overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, "real/train_bc.py", *overrides], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(tmp dir, encoder dir, demo file, run dir of one CLI training run)."""
    tmp = tmp_path_factory.mktemp("bc")
    encoder = make_encoder_dir(tmp / "encoder")
    import_rpt(write_episodes(tmp / "rpt", 6, steps=12)[0].parent, tmp / "demos.hdf5", resolution=32)
    run = tmp / "run"
    done = cli("data=" + str(tmp / "demos.hdf5"), f"encoder.path={encoder}", f"out={run}", *TINY)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "val MSE" in done.stdout and "checkpoint:=" in done.stdout
    return tmp, encoder, tmp / "demos.hdf5", run


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_writes_a_policy_that_beats_the_untrained_actor(setup):
    _, _, _, run = setup
    for name in ("model.safetensors", "model.json", "metrics.jsonl", "loss_curve.png", "features.npz", "features.json"):
        assert (run / name).stat().st_size > 0, name
    assert (run / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == [0, 10, 20, 30]
    assert all(np.isfinite(r["val_mse"]) and np.isfinite(r["train_loss"]) for r in rows)
    assert rows[-1]["val_mse"] < 0.5 * rows[0]["val_mse"] and rows[-1]["train_loss"] < rows[0]["train_loss"]
    meta = json.loads((run / "model.json").read_text())
    assert meta["kind"] == "toto_policy" and meta["stats"] == rows
    config = meta["config"]
    assert config["resolution"] == 32 and config["encoder"]["pool"] == "avg" and config["observation"]["preprocessing"]["rpt_crop"] == 448
    assert config["observation"]["proprio"][-1] == "gripper" and config["action"]["convention"] == "joint_delta"
    assert config["normalize"] == ["features", "proprio", "actions"] and config["bound"] == "clip"
    assert Policy.from_pretrained(run).action_std.shape == (8,)
    assert len(meta["data"]["val_episodes"]) == 2 and meta["bc"]["batch_size"] == 128 and meta["bc"]["lr"] == 1e-3


def test_rerun_reuses_cached_features(setup):
    tmp, encoder, data, run = setup
    before = (run / "features.npz").stat().st_mtime_ns
    summary = train(TrainBCConfig(data=str(data), out=str(run), epochs=5, val_every=5, val_fraction=0.34, progress=False,
                                  encoder=EncoderSpec(pool="avg", path=str(encoder), dtype=None)))
    assert (run / "features.npz").stat().st_mtime_ns == before and [r["epoch"] for r in metrics(run)] == [0, 5]
    assert summary["episodes"] == 6 and summary["val_episodes"] == 2


def test_act_is_preprocess_encoder_actor_by_hand(setup):
    _, encoder_dir, _, run = setup
    policy = load_robot_policy(run, dtype="fp32")
    rng = np.random.default_rng(5)
    # blocks of colour, not pixel noise: the policy sees the frame at 32 px, where noise averages to grey
    # and a patch-local tokenizer gives every patch one code, whatever the frame's orientation
    frame = np.kron(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), np.ones((60, 80, 1), dtype=np.uint8))
    joints, width = rng.normal(size=7), 0.03
    action = policy.act(frame, joints, width)
    assert action.shape == (8,) and action.dtype == np.float32 and np.isfinite(action).all() and 0 <= action[7] <= 1

    saved = Policy.from_pretrained(run)
    encoder = load_encoder(encoder_dir, layer="mid", pool="avg", dtype="fp32")
    features = encoder(preprocess_frame(frame, 32)[None])
    n = {k: getattr(saved, k).numpy() for k in ("proprio_mean", "proprio_std", "action_mean", "action_std")}
    proprio = (np.append(joints, 1.0).astype(np.float32) - n["proprio_mean"]) / n["proprio_std"]  # 3 cm < 7 cm: closed
    with torch.no_grad():
        expected = saved.actor(features, torch.from_numpy(proprio[None]))[0].numpy() * n["action_std"] + n["action_mean"]
    expected[7] = np.clip(expected[7], 0, 1)
    np.testing.assert_allclose(action, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(policy.act(frame[::-1].copy(), joints, width)[:7], action[:7])  # the image matters
    with pytest.raises(ValueError, match="joint_positions"):
        policy.act(frame, joints[:6], width)


def test_missing_checkpoint_or_encoder_is_one_line(setup, tmp_path):
    _, _, _, run = setup
    with pytest.raises(CheckpointError, match="no policy at .*real/train_bc.py") as error:
        load_robot_policy(tmp_path / "nothing")
    assert "\n" not in str(error.value)
    with pytest.raises(CheckpointError, match="no encoder checkpoint at .*no_encoder") as error:
        load_robot_policy(run, encoder_path=tmp_path / "no_encoder")
    assert "\n" not in str(error.value)


def test_bad_inputs_through_the_cli(setup):
    tmp, encoder, data, _ = setup
    wrong = tmp / "wrong.hdf5"
    with h5py.File(wrong, "w") as f:
        f.create_group("nothing")
    out = f"out={tmp / 'bad_run'}"
    assert "no such file" in one_line_error(cli(f"data={tmp / 'missing.hdf5'}", f"encoder.path={encoder}", out))
    assert "missing group 'data'" in one_line_error(cli(f"data={wrong}", f"encoder.path={encoder}", out))
    assert "no encoder checkpoint" in one_line_error(cli(f"data={data}", f"encoder.path={tmp / 'nope'}", out))
    assert not (tmp / "bad_run" / "model.json").exists()


def test_sim_demos_and_other_resolutions_are_refused(setup, tmp_path):
    tmp, encoder, data, _ = setup
    settings = EncoderSpec(pool="avg", path=str(encoder), dtype=None)
    sim = tmp_path / "sim.hdf5"
    with h5py.File(data) as src, h5py.File(sim, "w") as dst:
        src.copy(src["data"], dst, name="data")
        dst["data"].attrs["env_args"] = json.dumps({"env_name": "toto_robot/FrankaPick-v0", "type": 2, "env_kwargs": {}})
    with pytest.raises(ValueError, match="not real-robot demos"):
        train(TrainBCConfig(data=str(sim), out=str(tmp_path / "a"), encoder=settings, progress=False))
    import_rpt(tmp / "rpt", tmp_path / "64px.hdf5", resolution=64)
    with pytest.raises(ValueError, match="re-import with --resolution 32"):
        train(TrainBCConfig(data=str(tmp_path / "64px.hdf5"), out=str(tmp_path / "b"), encoder=settings, progress=False))


def test_absolute_actions_become_joint_deltas():
    q = np.cumsum(np.ones((4, 7), np.float32), axis=0)
    proprio = np.concatenate([q, np.zeros((4, 1), np.float32)], axis=1)
    absolute = np.concatenate([q + 5, np.array([[0], [1], [1], [0]], np.float32)], axis=1)
    rows = episode_rows(np.zeros((4, 3), np.float32), proprio, absolute, RealLayout(resolution=32, action_mode="joint_position"))
    assert rows["actions"].shape == (3, 8) and len(rows["features"]) == len(rows["proprio"]) == 3
    np.testing.assert_array_equal(rows["actions"][:, :7], np.ones((3, 7)))  # q[t+1] - q[t], not target - q
    np.testing.assert_array_equal(rows["actions"][:, 7], [0, 1, 1])
    train_ids, val_ids = split_episodes(10, 0.2, seed=0)
    assert len(val_ids) == 2 and sorted(train_ids + val_ids) == list(range(10)) and split_episodes(10, 0.2, 0)[1] == val_ids


def test_trains_from_a_directory_of_recorded_episodes(setup, tmp_path):
    _, encoder, _, _ = setup
    episodes = tmp_path / "episodes"
    episodes.mkdir()
    layout = RealLayout(resolution=32, source="recorder", gripper_obs="width_m", action_mode="joint_delta", control_hz=10.0)
    rng = np.random.default_rng(3)
    for i in range(4):  # what the recorder node writes: 8 samples -> 7 steps each
        frames = list(rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
        joints, widths = np.cumsum(rng.normal(0, 0.01, (8, 7)), axis=0), np.where(np.arange(8) < 4, 0.08, 0.03)
        write_demo_file(episodes / f"episode_{i:04d}.hdf5", i, episode_demo(frames, joints, widths, True, seed=i),
                        layout.env_args())
    (episodes / ".episode_0004.hdf5.0badf00d.tmp").write_bytes(b"an interrupted write")  # not an episode
    run = tmp_path / "run"

    def cfg(data: Path) -> TrainBCConfig:
        return TrainBCConfig(data=str(data), out=str(run), epochs=3, val_every=3, val_fraction=0.25, progress=False,
                             encoder=EncoderSpec(pool="avg", path=str(encoder), dtype=None))

    summary = train(cfg(episodes))
    assert summary["episodes"] == 4 and summary["val_episodes"] == 1 and summary["samples"] == 3 * 7
    assert read_layout(run / "episodes.hdf5")[1:] == ([7] * 4, [True] * 4)
    assert load_robot_policy(run).act(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), joints[0], 0.05).shape == (8,)
    before = [(run / name).stat().st_mtime_ns for name in ("episodes.hdf5", "features.npz")]
    train(cfg(episodes))  # unchanged episodes: neither merged nor encoded again
    assert [(run / name).stat().st_mtime_ns for name in ("episodes.hdf5", "features.npz")] == before

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no episode_\*.hdf5 files") as error:
        train(cfg(tmp_path / "empty"))
    with h5py.File(episodes / "episode_0005.hdf5", "w") as f:
        f.create_group("nothing")
    with pytest.raises(ValueError, match="episode_0005.hdf5: missing group 'data'") as error:
        train(cfg(episodes))
    assert "\n" not in str(error.value)
    (episodes / "episode_0005.hdf5").write_text("not HDF5")
    with pytest.raises(ValueError, match="episode_0005.hdf5 is not a readable HDF5 file") as error:
        train(cfg(episodes))
    assert "\n" not in str(error.value)
