"""Faults on disk, signals and shared folders (issue 25): a full disk, a second writer, stale locks,
an `out` that is a file, file modes, unreadable saved files, Ctrl-C."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.cli_errors import one_line_error
from toto_robot import lock
from toto_robot.checkpoint import CheckpointError, save_state, save_weights
from toto_robot.io import DiskFullError, atomic_write

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (needs root and mount permission, as on this project's machines and CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}): the disk-full path is not exercised")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)  # lazy: a failed writer may still hold its unlinked temp file


def test_a_full_disk_is_one_line_and_the_previous_checkpoint_survives(small_disk):
    save_state(small_disk / "state.pt", {"w": torch.zeros(1000)})
    before = (small_disk / "state.pt").read_bytes()
    with pytest.raises(DiskFullError) as error:
        save_state(small_disk / "state.pt", {"w": torch.zeros(1_000_000)})  # 4 MB into 2 MB: torch's own error type
    message = error.value.strerror
    assert message.startswith("disk full writing state.pt in ") and str(small_disk) in message and "\n" not in message
    assert (small_disk / "state.pt").read_bytes() == before
    assert [p.name for p in small_disk.iterdir()] == ["state.pt"]  # no temp file left behind
    with pytest.raises(DiskFullError):
        save_weights(small_disk, "model", {"w": torch.zeros(1_000_000)}, kind="x", config={})


def test_an_error_that_is_not_a_full_disk_passes_through(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(tmp_path / "a.bin"):
            raise RuntimeError("boom")
    with pytest.raises(DiskFullError):
        with atomic_write(tmp_path / "b.bin"):
            raise OSError(errno.ENOSPC, "No space left on device")


def test_weights_follow_the_umask(tmp_path):
    save_weights(tmp_path, "model", {"w": torch.zeros(3)}, kind="x", config={})
    umask = os.umask(0)
    os.umask(umask)
    for name in ("model.safetensors", "model.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_live_holder_is_named_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / lock.LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename}))
        with pytest.raises(ValueError, match=f"is in use by PID {sleeper.pid}"):
            lock.acquire(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    (tmp_path / lock.LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": os.uname().nodename}))
    with lock.run_lock(tmp_path):
        assert json.loads((tmp_path / lock.LOCK_NAME).read_text())["pid"] == os.getpid()
        assert "taking over the lock" in capsys.readouterr().out
    assert not (tmp_path / lock.LOCK_NAME).exists()  # released


def test_a_second_writer_and_an_out_that_is_a_file_are_one_line(tmp_path):
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = tmp_path / "run"
        run.mkdir()
        (run / lock.LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename}))
        done = subprocess.run([sys.executable, "sim/train_policy.py", "encoder=state", f"out={run}"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert f"in use by PID {sleeper.pid}" in one_line_error(done)
    finally:
        sleeper.kill()
        sleeper.wait()
    (tmp_path / "afile").write_text("x")
    done = subprocess.run([sys.executable, "sim/record.py", "episodes=1", f"out={tmp_path / 'afile'}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "is a file, not a run folder" in one_line_error(done)


def test_a_truncated_buffer_and_an_empty_frame_are_one_line(tmp_path):
    from policies.buffer import AggregatedBuffer
    from toto_robot.media.davis import read_davis, write_listing, write_mask

    buffer = AggregatedBuffer()
    buffer.add(np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32), 0)
    buffer.save(tmp_path / "buffer.npz")
    blob = (tmp_path / "buffer.npz").read_bytes()
    (tmp_path / "buffer.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="buffer.npz is unreadable"):
        AggregatedBuffer.load(tmp_path / "buffer.npz")
    root = tmp_path / "davis"
    frames = root / "JPEGImages" / "480p" / "v"
    frames.mkdir(parents=True)
    (frames / "00000.jpg").write_bytes(b"")
    write_mask(root / "Annotations" / "480p" / "v" / "00000.png", np.ones((4, 4), np.uint8))
    write_listing(root, ["v"])
    (video,) = read_davis(root)
    with pytest.raises(ValueError, match=r"frame .*00000.jpg is unreadable"):
        video.load_frames()


def test_ctrl_c_is_one_line_exit_130_and_nothing_truncated(tmp_path):
    # A child inherits an ignored SIGINT, and the test process may have one: a non-interactive shell starts a
    # background job (`pytest ... &`, as a CI runner or `nohup ... &` may) with SIGINT ignored. The child starts as
    # an interactive shell would start it, so the test holds however pytest was launched.
    def as_from_a_shell():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    child = subprocess.Popen([sys.executable, "sim/record.py", "task=franka_pick", "episodes=200", "demos=false",
                              f"out={tmp_path}"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=as_from_a_shell)
    videos = tmp_path / "franka_pick" / "videos"
    deadline = time.time() + 120
    while time.time() < deadline and not (videos.is_dir() and any(videos.glob("*.mp4"))):
        time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]
    assert "Traceback" not in err and lines[-1].startswith("interrupted") and "rerun the same command" in lines[-1]
    assert not list(tmp_path.rglob("*.tmp"))  # no temp file left


def test_saved_json_is_read_strictly_one_line_naming_file_and_field(tmp_path):
    from policies import EncoderSpec, Policy, PolicyConfig
    from tests.encoder.conftest import make_encoder_dir
    from toto_robot import load_encoder

    config = PolicyConfig(encoder=EncoderSpec(kind="state"), feat_dim=4, proprio_dim=0, action_dim=2)
    Policy(config).save_pretrained(tmp_path / "p")
    path = tmp_path / "p" / "model.json"
    good = json.loads(path.read_text())
    assert good["format"] == 1
    cases = [({"bound": None, "boud": "clip"}, "unknown field config.boud"),
             ({"action_dim": "nine"}, "field config.action_dim: expected an integer, got 'nine'"),
             ({"encoder": {**good["config"]["encoder"], "pol": "avg"}}, "unknown field config.encoder.pol")]
    for change, message in cases:
        bad = {**good["config"], **change}
        bad = {k: v for k, v in bad.items() if v is not None}
        path.write_text(json.dumps({**good, "config": bad}))
        with pytest.raises(CheckpointError, match=message) as error:
            Policy.from_pretrained(tmp_path / "p")
        assert str(path) in str(error.value) and "\n" not in str(error.value)
    path.write_text(json.dumps({**good, "config": [1, 2]}))
    with pytest.raises(CheckpointError, match="config must be an object, got list"):
        Policy.from_pretrained(tmp_path / "p")
    path.write_text(json.dumps({**good, "config": {**good["config"], "feat_dim": 5}}))  # weights of 4 features
    with pytest.raises(CheckpointError, match="does not match"):
        Policy.from_pretrained(tmp_path / "p")
    encoder = make_encoder_dir(tmp_path / "enc")
    meta = json.loads((encoder / "toto.json").read_text())
    del meta["config"]["code_head"]  # an export made before patch-dVAE existed: read as the token model it is
    (encoder / "toto.json").write_text(json.dumps(meta))
    assert load_encoder(encoder).model.config.code_head is False
    del meta["config"]["n_layers"]
    (encoder / "toto.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"toto.json: missing field config.n_layers"):
        load_encoder(encoder)


def test_a_tokenizer_saved_before_local_existed_loads_as_the_3x3_encoder(tmp_path):
    from encoder.tokenizers import load_tokenizer, save_tokenizer
    from encoder.tokenizers.fsq import FSQConfig, FSQTokenizer

    save_tokenizer(FSQTokenizer(FSQConfig(local=False, channels=(8, 16, 16))), tmp_path)
    meta = json.loads((tmp_path / "tokenizer.json").read_text())
    del meta["config"]["local"], meta["format"]  # as format 0 wrote it
    (tmp_path / "tokenizer.json").write_text(json.dumps(meta))
    assert load_tokenizer(tmp_path).cfg.local is False
