"""Recording: files, the robomimic HDF5 schema, MP4s, resume, crash safety and the hydra CLI."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import av
import h5py
import numpy as np
import pytest

from sim.env import TotoTaskEnv
from sim.experts import make_expert
from sim.record import EnvOptions, RecordConfig, record
from sim.tasks import TASKS
from toto_robot.demos import read_demo_file
from toto_robot.io import atomic_write
from toto_robot.video_writer import write_mp4

ROOT = Path(__file__).resolve().parents[2]
SIZE = 64


def config(out: Path, **overrides) -> RecordConfig:
    options = dict(task="franka_pick", episodes=2, out=str(out), image_size=SIZE, progress=False)
    return RecordConfig(**{**options, **overrides}, env=EnvOptions(episode_seconds=1.5))


def episode_files(task_dir: Path, i: int, cameras=("wrist", "third_person")) -> list[Path]:
    videos = [task_dir / "videos" / f"episode_{i:05d}_{c}.mp4" for c in cameras]
    return videos + [task_dir / "episodes" / f"demo_{i}.hdf5"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("rec")
    (summary,) = record(config(out))
    return out / "franka_pick", summary


def test_files_written(recorded):
    task_dir, summary = recorded
    for i in range(2):
        assert all(p.is_file() and p.stat().st_size > 0 for p in episode_files(task_dir, i))
    assert (task_dir / "demos.hdf5").is_file()
    assert not list(task_dir.rglob("*.tmp"))
    assert summary["episodes"] == 2 and summary["recorded"] == 2 and summary["path"] == str(task_dir / "demos.hdf5")


def test_demos_schema(recorded):
    task_dir, _ = recorded
    with h5py.File(task_dir / "demos.hdf5", "r") as f:
        data = f["data"]
        assert sorted(data) == ["demo_0", "demo_1"]
        args = json.loads(data.attrs["env_args"])
        assert set(args) == {"env_name", "type", "env_kwargs"}
        assert args["env_name"] == TASKS["franka_pick"].env_id and args["env_kwargs"]["image_size"] == SIZE
        total = 0
        for i in range(2):
            demo = data[f"demo_{i}"]
            n = int(demo.attrs["num_samples"])
            total += n
            assert set(demo) == {"actions", "rewards", "dones", "states", "obs"}
            assert set(demo["obs"]) == {"pixels", "proprio", "third_person_pixels"}
            assert demo["actions"].shape == (n, 9) and demo["rewards"].shape == (n,)
            assert demo["obs/pixels"].shape == (n, SIZE, SIZE, 3) and demo["obs/pixels"].dtype == np.uint8
            assert demo["obs/third_person_pixels"].shape == (n, SIZE, SIZE, 3)
            dones = demo["dones"][()]
            assert dones[-1] == 1 and not dones[:-1].any()
            assert isinstance(demo.attrs["success"], np.bool_) and int(demo.attrs["seed"]) == i
        assert int(data.attrs["total"]) == total


def test_demos_hold_seeded_states_and_expert_actions(recorded):
    task_dir, _ = recorded
    args, demos = read_demo_file(task_dir / "demos.hdf5")
    env = TotoTaskEnv("franka_pick", **args["env_kwargs"])
    expert = make_expert("franka_pick", env.config)
    for demo in demos:
        obs, _ = env.reset(seed=demo.seed)
        np.testing.assert_array_equal(demo.states[0], obs["state"])
        np.testing.assert_array_equal(demo.obs["pixels"][0], obs["pixels"])
        labels = np.stack([expert(s) for s in demo.states])  # action_noise=0: executed == expert's
        np.testing.assert_array_equal(demo.actions, labels)
    env.close()


def test_validator_names_the_missing_key(recorded, tmp_path):
    task_dir, _ = recorded
    path = tmp_path / "broken.hdf5"
    shutil.copy(task_dir / "demos.hdf5", path)
    with h5py.File(path, "a") as f:
        del f["data/demo_1/actions"]
    with pytest.raises(ValueError, match="missing key data/demo_1/actions"):
        read_demo_file(path)
    shutil.copy(task_dir / "demos.hdf5", path)
    with h5py.File(path, "a") as f:
        del f["data"].attrs["env_args"]
    with pytest.raises(ValueError, match="env_args"):
        read_demo_file(path)


def test_mp4_decodes(recorded):
    task_dir, _ = recorded
    _, demos = read_demo_file(task_dir / "demos.hdf5", obs_keys=[])
    for camera in ("wrist", "third_person"):
        with av.open(str(task_dir / "videos" / f"episode_00001_{camera}.mp4")) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        assert len(frames) == demos[1].num_samples + 1  # every observation plus the final state
        assert frames[0].shape == (SIZE, SIZE, 3)


def test_write_mp4_pads_odd_sizes(tmp_path):
    frames = [np.full((33, 35, 3), 10 * k, np.uint8) for k in range(5)]
    write_mp4(tmp_path / "odd.mp4", frames, fps=20)
    with av.open(str(tmp_path / "odd.mp4")) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == 5 and (decoded[0].height, decoded[0].width) == (34, 36)


def test_resume_records_only_new_episodes(tmp_path):
    (first,) = record(config(tmp_path, cameras=["wrist"]))
    task_dir = tmp_path / "franka_pick"
    old = {p: p.stat().st_mtime_ns for i in range(2) for p in episode_files(task_dir, i, ["wrist"])}
    (second,) = record(config(tmp_path, cameras=["wrist"], episodes=3))
    assert (first["recorded"], second["recorded"], second["resumed"]) == (2, 1, 2)
    assert {p: p.stat().st_mtime_ns for p in old} == old
    assert all(p.exists() for p in episode_files(task_dir, 2, ["wrist"]))
    _, demos = read_demo_file(task_dir / "demos.hdf5")
    assert [d.seed for d in demos] == [0, 1, 2]


def test_resume_refuses_other_settings(tmp_path):
    record(config(tmp_path, cameras=["wrist"], episodes=1))
    with pytest.raises(ValueError, match="action_noise"):
        record(config(tmp_path, cameras=["wrist"], episodes=1, action_noise=0.1))


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "file.bin"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_recording_is_completed_by_the_next_run(tmp_path, monkeypatch):
    import sim.record

    real = sim.record.write_demo_file

    def crash_on_second(path, index, *args, **kwargs):
        if index == 1:
            with atomic_write(path) as tmp:
                tmp.write_bytes(b"half an hdf5 file")
                raise KeyboardInterrupt
        real(path, index, *args, **kwargs)

    monkeypatch.setattr(sim.record, "write_demo_file", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        record(config(tmp_path, cameras=["wrist"]))
    task_dir = tmp_path / "franka_pick"
    assert not (task_dir / "episodes" / "demo_1.hdf5").exists() and not list(task_dir.rglob("*.tmp"))
    stale = task_dir / "episodes" / ".demo_1.hdf5.killed.tmp"  # what a SIGKILL mid-write leaves
    stale.write_bytes(b"half")
    monkeypatch.setattr(sim.record, "write_demo_file", real)
    (summary,) = record(config(tmp_path, cameras=["wrist"]))
    assert (summary["recorded"], summary["resumed"]) == (1, 1)
    assert not stale.exists()
    assert len(read_demo_file(task_dir / "demos.hdf5")[1]) == 2


def test_unknown_task_lists_valid_tasks(tmp_path):
    with pytest.raises(ValueError, match="valid tasks: franka_pick, franka_cabinet, kuka_pick, kuka_cabinet"):
        record(config(tmp_path, task="franka_pik"))


def run_cli(*overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "sim/record.py", *overrides]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_cli(tmp_path):
    out = tmp_path / "cli"
    done = run_cli("task=franka_pick", "episodes=1", f"out={out}", "image_size=32", "cameras=[wrist]",
                   "env.episode_seconds=0.5", "progress=false")
    assert done.returncode == 0, done.stderr
    assert "franka_pick: 1 episodes (1 recorded, 0 resumed)" in done.stdout
    assert (out / "franka_pick" / "demos.hdf5").is_file() and (out / ".hydra" / "config.yaml").is_file()

    typo = run_cli("episods=3", f"out={out}")
    assert typo.returncode != 0 and "Key 'episods' not in 'RecordConfig'" in typo.stderr

    bad = run_cli("task=franka_pik", f"out={out}")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "error: unknown task 'franka_pik'; valid tasks: franka_pick, franka_cabinet, kuka_pick, kuka_cabinet"
    ]
