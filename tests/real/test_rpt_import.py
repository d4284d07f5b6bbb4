"""real.preprocess and real.rpt_import: the RPT lower-centre crop geometry, and an import of synthetic
episodes (RLDS names, aliases, nested HDF5, missing actions) where bad episodes are skipped and
counted, the output validates against the robomimic schema and appears atomically."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from real.demo_layout import RealLayout
from real.preprocess import crop_box, hand_camera_crop, preprocess_frame, preprocess_frames
from real.rpt_import import import_rpt
from tests.real.synthetic_demos import rpt_episode, write_episodes
from toto_robot.demos import read_demo_file

ROOT = Path(__file__).resolve().parents[2]


def test_crop_box_is_lower_centre():
    assert crop_box(480, 640) == (32, 96, 448)  # frame[32:480, 96:544]
    assert crop_box(300, 200) == (100, 0, 200)  # portrait: the bottom square
    assert crop_box(200, 300) == (0, 50, 200)  # other landscape sizes: the largest square, centred


def test_crop_and_resize_keep_a_lower_centre_marker():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[32, 96] = frame[479, 543] = (255, 0, 0)  # the crop's corners
    frame[31, 96] = (0, 255, 0)  # one row above the crop
    frame[32, 95] = frame[32, 544] = (0, 0, 255)  # one column left / right of it
    square = hand_camera_crop(frame)
    assert square.shape == (448, 448, 3)
    assert tuple(square[0, 0]) == tuple(square[447, 447]) == (255, 0, 0)
    assert square[..., 1:].max() == 0 and (square[..., 0] > 0).sum() == 2
    frame[:] = 0
    frame[424:480, 96:152] = 255  # the crop's bottom-left 56x56 = 4x4 pixels after resizing 448 -> 32
    small = preprocess_frame(frame, 32)
    assert small.shape == (32, 32, 3) and small.dtype == np.uint8
    # output pixels 14 input pixels wide; PIL's antialiased bilinear blends one output pixel across the block's edge
    assert (small[29:, :3] == 255).all() and small[:27].max() == 0 and small[:, 5:].max() == 0


def test_preprocess_rejects_bad_frames_in_one_line():
    for bad in (np.zeros((480, 640, 3), np.float32), np.zeros((480, 640), np.uint8), np.zeros((4, 480, 640, 3), np.uint8)):
        with pytest.raises(ValueError) as error:
            preprocess_frame(bad, 32)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="batch of frames"):
        preprocess_frames(np.zeros((480, 640, 3), np.uint8), 32)


@pytest.fixture
def episodes(tmp_path):
    """3 good episodes in three spellings, 5 bad ones."""
    src = tmp_path / "rpt"
    good = write_episodes(src, 1, steps=5)
    rng = np.random.default_rng(1)
    ep = rpt_episode(rng, 4)  # aliases
    np.savez(src / "ep_alias.npz", images=ep["hand_image"], joint_positions=ep["joint_pos"], gripper_state=ep["gripper"],
             actions=ep["action"])
    ep = rpt_episode(rng, 6)  # nested HDF5 in the RLDS layout, no actions: derived from the joints
    with h5py.File(src / "ep_nested.hdf5", "w") as f:
        for key in ("hand_image", "joint_pos", "gripper"):
            f[f"observation/{key}"] = ep[key]
    nan = rpt_episode(rng, 3)
    nan["joint_pos"][1, 2] = np.nan
    np.savez(src / "ep_nan.npz", **nan)
    np.savez(src / "ep_no_images.npz", joint_pos=ep["joint_pos"], action=ep["action"])
    np.savez(src / "ep_short_actions.npz", **{**rpt_episode(rng, 3), "action": np.zeros((3, 7), np.float32)})
    np.savez(src / "ep_zz_no_gripper.npz", **{k: v for k, v in rpt_episode(rng, 3).items() if k != "gripper"})
    (src / "ep_truncated.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 20)
    return src, good[0], ep


def test_import_skips_bad_episodes_and_validates(episodes, tmp_path):
    src, first, nested = episodes
    out = tmp_path / "demos.hdf5"
    summary = import_rpt(src, out, resolution=32)
    assert summary["episodes"] == 3 and summary["derived_actions"] == 1 and summary["samples"] == 5 + 4 + 5
    reasons = summary["skipped"]
    assert set(reasons) == {"ep_nan.npz", "ep_no_images.npz", "ep_short_actions.npz", "ep_truncated.hdf5", "ep_zz_no_gripper.npz"}
    assert "NaN" in reasons["ep_nan.npz"] and "no hand camera images" in reasons["ep_no_images.npz"]
    assert "(3, 7)" in reasons["ep_short_actions.npz"] and "unreadable" in reasons["ep_truncated.hdf5"]
    assert "proprio of 7 values" in reasons["ep_zz_no_gripper.npz"]  # the first episode fixed 7 joints + gripper
    env_args, demos = read_demo_file(out)  # validates the robomimic schema
    layout = RealLayout.from_env_args(env_args)
    assert (layout.resolution, layout.gripper_obs, layout.action_mode) == (32, "closed_binary", "joint_delta")
    with np.load(first) as raw:  # files in name order: ep_000, ep_alias, ep_nested
        np.testing.assert_array_equal(demos[0].obs["pixels"], preprocess_frames(raw["hand_image"], 32))
        np.testing.assert_array_equal(demos[0].obs["proprio"][:, :7], raw["joint_pos"])
        np.testing.assert_array_equal(demos[0].actions, raw["action"])
    assert demos[1].obs["proprio"].shape == (4, 8)  # the alias file
    d = demos[2]  # derived: q[t+1] - q[t] and the next gripper state, last step dropped
    np.testing.assert_allclose(d.actions[:, :7], np.diff(nested["joint_pos"], axis=0), atol=1e-6)
    np.testing.assert_array_equal(d.actions[:, 7], nested["gripper"][1:].astype(np.float32))
    assert d.obs["pixels"].shape == (5, 32, 32, 3) and d.states.shape == (5, 0) and d.success and d.rewards[-1] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demos.hdf5", "rpt"]  # no parts left behind


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, "-m", "real.rpt_import", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_failure_is_one_line_and_keeps_the_previous_output(tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    np.savez(src / "ep.npz", joint_pos=np.zeros((3, 7)))
    out = tmp_path / "demos.hdf5"
    out.write_bytes(b"previous import")
    for args in ((str(src), str(out)), (str(tmp_path / "missing"), str(out))):
        done = cli(*args, "--no-progress")
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: ")
    assert out.read_bytes() == b"previous import" and sorted(p.name for p in tmp_path.iterdir()) == ["bad", "demos.hdf5"]


def test_stride_keeps_every_kth_step_with_summed_actions(tmp_path):
    """Demos at 30 Hz for a 10 Hz policy: stride 3 keeps steps 0, 3, 6; given actions are summed per
    block of 3 (gripper: the block's last); derived ones span q[t+3] - q[t]; control_hz 30 -> 10."""
    rng = np.random.default_rng(3)
    given, derived = rpt_episode(rng, 10), rpt_episode(rng, 8)
    np.savez(tmp_path / "a_given.npz", **given)
    np.savez(tmp_path / "b_derived.npz", **{k: v for k, v in derived.items() if k != "action"})
    np.savez(tmp_path / "c_short.npz", **rpt_episode(rng, 2))
    out = tmp_path / "out" / "demos.hdf5"
    summary = import_rpt(tmp_path, out, resolution=32, control_hz=30.0, stride=3)
    assert summary["episodes"] == 2 and "too short for --stride 3" in summary["skipped"]["c_short.npz"]
    env_args, (a, b) = read_demo_file(out)
    assert RealLayout.from_env_args(env_args).control_hz == 10.0
    np.testing.assert_array_equal(a.obs["pixels"], preprocess_frames(given["hand_image"][[0, 3, 6]], 32))
    blocks = given["action"][:9].reshape(3, 3, 8)
    np.testing.assert_allclose(a.actions[:, :7], blocks[:, :, :7].sum(axis=1), atol=1e-6)
    np.testing.assert_array_equal(a.actions[:, 7], blocks[:, -1, 7])
    np.testing.assert_allclose(b.actions[:, :7], np.diff(derived["joint_pos"][[0, 3, 6]], axis=0), atol=1e-6)
    assert b.obs["pixels"].shape == (2, 32, 32, 3)
