"""Probes (encoder/probe.py): datasets, heads that learn, results.json + plot, one-line errors.

Everything runs on a random tiny encoder (conftest.make_encoder_dir: 32px, 4x4 tokens, 4 blocks)
and tiny data (300 digits, a few 20-frame PyAV clips), so the file takes seconds.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from encoder.frozen import load_encoder
from encoder.pooling import AttentionPool
from encoder.probes import run
from encoder.probes.config import ImageData, ProbeConfig, TrainSettings, VideoData, probe_name
from encoder.probes.data import csv_video_dataset, digits_dataset, image_folder_dataset, read_label_csv, stratified_split
from encoder.probes.heads import attention_pool
from encoder.probes.run import resolve_layers, run_probes
from encoder.probes.train import extract_features, train_probe
from toto_robot.media.clips import ClipSpec
from tests.pretrain.conftest import corrupt_copies, synthetic_frames, write_video

ROOT = Path(__file__).resolve().parents[2]
FAST = TrainSettings(epochs=30, batch_size=32, lr=1e-2, warmup_epochs=1)


def config(encoder, out, **overrides) -> ProbeConfig:
    cfg = ProbeConfig(encoder=str(encoder), out=str(out), train=FAST, progress=False, cache_features=False, dtype=None,
                      image=ImageData(limit=300), video=VideoData(source=None))
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


@pytest.fixture(scope="module")
def digit_features(tiny_encoder_dir):
    encoder = load_encoder(tiny_encoder_dir, dtype="fp32")
    data = digits_dataset(encoder.resolution, val_fraction=0.2, seed=0, limit=300)
    return [extract_features(encoder, split, [1, 4], 1, progress=False) for split in (data.train, data.val)]


def test_linear_probe_beats_chance(digit_features):
    train, val = digit_features
    result = train_probe("linear", train.pooled[4], train.labels, val.pooled[4], val.labels, 10, FAST)
    assert result.accuracy >= 0.3  # chance is 0.1; a random tiny encoder still separates digits
    assert result.losses[-1] < 0.75 * result.losses[0]


def mapped_file(tensor: torch.Tensor) -> str:
    """The file the tensor's memory is mapped from ("" if anonymous memory), from /proc/self/maps."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if start <= address < end:
            return fields[5] if len(fields) > 5 else ""
    return ""


def test_features_stream_to_disk_and_come_back_memory_mapped(tiny_encoder_dir, digit_features, tmp_path):
    from encoder.probes.store import read_store

    encoder = load_encoder(tiny_encoder_dir, dtype="fp32")
    data = digits_dataset(encoder.resolution, val_fraction=0.2, seed=0, limit=300)
    stored = extract_features(encoder, data.train, [1, 4], 1, progress=False, batch_frames=16, store=tmp_path / "s", key="k1")
    in_ram = digit_features[0]
    assert torch.equal(stored.labels, in_ram.labels)
    for layer in (1, 4):
        assert torch.allclose(stored.pooled[layer], in_ram.pooled[layer], atol=1e-6)
        assert torch.equal(stored.tokens[layer], in_ram.tokens[layer])
        assert mapped_file(stored.pooled[layer]).endswith(f"pooled_{layer}.f32")  # read from the file, not held in RAM
    assert (tmp_path / "s" / "pooled_4.f32").stat().st_size == len(in_ram.labels) * 32 * 4
    assert read_store(tmp_path / "s", "k1") is not None and read_store(tmp_path / "s", "other settings") is None
    (tmp_path / "s" / "meta.json").unlink()  # an extraction killed before the end is not taken
    assert read_store(tmp_path / "s", "k1") is None


def test_attention_probe_trains(digit_features):
    train, val = digit_features
    assert train.tokens[1].dtype.is_floating_point and train.tokens[1].shape[1:] == (16, 32)  # 4x4 grid kept
    for kind in ("attention", "attention_mlp"):
        result = train_probe(kind, train.tokens[1], train.labels, val.tokens[1], val.labels, 10, FAST)
        assert result.losses[-1] < 0.75 * result.losses[0] < 0.75 * math.log(10) + 0.1
        assert result.accuracy > 0.2


def test_fast_attention_pool_is_attention_pool():
    torch.manual_seed(0)
    for heads in (1, 4):
        pool = AttentionPool(32, n_heads=heads)
        with torch.no_grad():
            pool.query.normal_()
            pool.wk.bias.normal_()
        tokens = torch.randn(3, 10, 32)
        torch.testing.assert_close(attention_pool(pool, tokens), pool(tokens), atol=1e-5, rtol=1e-5)


def test_run_writes_results_and_plot_for_every_layer(tiny_encoder_dir, tmp_path):
    cfg = config(tiny_encoder_dir, tmp_path / "out", layers=["1", "mid", "-1"])
    result = run_probes(cfg)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["layers"] == [1, 2, 4] and saved["probes"] == ["linear", "attention", "attention_mlp"]
    digits = saved["datasets"]["digits"]
    for probe in ("linear", "attention", "attention_mlp"):
        assert sorted(digits["accuracy"][probe]) == ["1", "2", "4"]
    assert digits["chance"] == pytest.approx(0.1, abs=0.05) and digits["n_train"] + digits["n_val"] == 300
    assert digits["best_layer"] in (1, 2, 4) and digits["best_layer_fraction"] == digits["best_layer"] / 4
    pooling = digits["pooling_at_best_layer"]
    assert pooling["average"] == digits["accuracy"]["linear"][str(pooling["layer"])]
    assert max(digits["accuracy"]["linear"].values()) > digits["chance"] + 0.15
    with Image.open(tmp_path / "out" / "accuracy_vs_layer.png") as png:
        assert png.size[0] > 200
    assert result["datasets"]["digits"]["best_layer"] == digits["best_layer"]


def test_features_are_cached_for_reruns(tiny_encoder_dir, tmp_path, monkeypatch):
    cfg = config(tiny_encoder_dir, tmp_path / "out", layers=["2"], probes=["linear"], cache_features=True,
                 image=ImageData(limit=60))
    first = run_probes(cfg)["datasets"]["digits"]
    assert sorted(p.name for p in (tmp_path / "out" / "features").iterdir()) == ["digits_train", "digits_val"]
    monkeypatch.setattr(run, "extract_features", lambda *a, **k: pytest.fail("features were extracted again"))
    again = run_probes(cfg)["datasets"]["digits"]
    assert again["accuracy"] == first["accuracy"]  # same features, same seed


def test_image_folder_labels_and_splits(tmp_path):
    rng = np.random.default_rng(0)
    for name, count in (("cat", 5), ("dog", 4)):
        for i in range(count):
            (tmp_path / "flat" / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "flat" / name / f"{i}.png")
    (tmp_path / "flat" / "dog" / "notes.txt").write_text("not an image")
    data = image_folder_dataset(tmp_path / "flat", 32, val_fraction=0.4, seed=0)
    assert data.classes == ["cat", "dog"] and len(data.train) + len(data.val) == 9
    for split in (data.train, data.val):
        assert set(split.labels) == {0, 1}  # stratified: both classes in both splits
        for item, label in zip(split.items, split.labels):
            assert Path(item).parent.name == data.classes[label]
    image = data.val.sample(0, seed=0)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    # ImageNet layout: root/train and root/val are the splits
    for split in ("train", "val"):
        for name in ("a", "b"):
            (tmp_path / "pre" / split / name).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "pre" / split / name / "x.jpg")
    data = image_folder_dataset(tmp_path / "pre", 32)
    assert data.info["presplit"] and len(data.train) == len(data.val) == 2 and list(data.val.labels) == [0, 1]


@pytest.fixture(scope="module")
def video_csv(tmp_path_factory):
    """8 tiny clips of 2 labels, plus a corrupt file and a missing one, listed in a CSV."""
    root = tmp_path_factory.mktemp("videos")
    rows = []
    for i in range(8):
        frames = synthetic_frames(20, 48, 40)
        frames[..., 2] = 255 * (i % 2)  # label visible in the blue channel
        write_video(root / "clips" / f"v{i}.mp4", frames)
        rows.append(f"clips/v{i}.mp4,{'odd' if i % 2 else 'even'}")
    corrupt_copies(root / "clips" / "v0.mp4", root / "bad")
    rows += ["bad/corrupt.mp4,even", "clips/missing.mp4,odd"]
    (root / "train.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    return root / "train.csv"


def test_csv_video_dataset_loads_and_skips_corrupt(video_csv, tiny_encoder_dir, tmp_path):
    spec = ClipSpec(frames=4, stride=2, resolution=32)
    data = csv_video_dataset(video_csv, spec, val_fraction=0.3, seed=0)
    assert data.kind == "video" and data.classes == ["even", "odd"] and data.frames == 4
    assert len(data.train) + len(data.val) == 10
    good = next(i for i, item in enumerate(data.val.items) if Path(item).parent.name == "clips" and Path(item).exists())
    clip = data.val.sample(good, seed=0)
    assert clip.shape == (4, 32, 32, 3) and clip.dtype == np.uint8
    video = VideoData(source=str(video_csv), frames=4, stride=2, val_fraction=0.3)
    cfg = config(tiny_encoder_dir, tmp_path / "out", image=ImageData(source=None), video=video, layers=["2"],
                 probes=["linear", "attention"], token_frames=2, token_grid=2)
    summary = run_probes(cfg)["datasets"]["train"]
    skipped = {reason: summary["skipped"]["train"].get(reason, 0) + summary["skipped"]["val"].get(reason, 0)
               for reason in ("missing", "unreadable")}
    assert skipped == {"missing": 1, "unreadable": 1}
    assert summary["n_train"] + summary["n_val"] == 8 and summary["frames"] == 4


def test_robot_dataset_labels_tasks_and_keeps_episodes_whole(tmp_path):
    from encoder.probes.data import ROBOT_TASKS, robot_dataset
    from pretrain.data.embedded import record_robot_videos

    data = robot_dataset(tmp_path, ClipSpec(frames=4, stride=2, resolution=32), record_robot_videos, episodes_per_task=2,
                         val_fraction=0.5, train_clips=1, progress=False)
    assert data.classes == list(ROBOT_TASKS)
    episodes = [{(Path(p).parts[-3], Path(p).name.split("_")[1]) for p in split.items} for split in (data.train, data.val)]
    assert not episodes[0] & episodes[1] and len(data.train) == len(data.val) == 8  # 1 episode x 2 cameras x 4 tasks
    for path, label in zip(data.val.items, data.val.labels):
        assert Path(path).parts[-3] == ROBOT_TASKS[label]
    assert data.val.sample(0, seed=0).shape == (4, 32, 32, 3)


def test_splits_and_names():
    labels = np.repeat(np.arange(3), 10)
    train, val = stratified_split(labels, 0.2, seed=0)
    assert len(val) == 6 and not set(train) & set(val) and set(labels[val]) == {0, 1, 2}
    assert (train, val)[1].tolist() == stratified_split(labels, 0.2, seed=0)[1].tolist()  # fixed seed
    assert probe_name("digits", "robot") == "digits+robot" and probe_name("/d/imagenet", None) == "imagenet"
    assert probe_name(None, "/d/k400/train.csv") == "train"
    assert resolve_layers(None, 4) == [1, 2, 3, 4] and resolve_layers(["0.5", "-1", "3"], 4) == [2, 3, 4]


def test_bad_input_is_one_line(tiny_encoder_dir, tmp_path):
    def error(**overrides):
        with pytest.raises((ValueError, FileNotFoundError)) as info:
            run_probes(config(overrides.pop("encoder", tiny_encoder_dir), tmp_path / "out", **overrides))
        assert "\n" not in str(info.value)
        return str(info.value)

    assert "python pretrain/run.py" in error(encoder=str(tmp_path / "nope"))
    assert "not an encoder" in error(encoder=str(tmp_path))
    assert "1..4" in error(layers=["9"])
    assert "unknown probe type" in error(probes=["linear", "knn"])
    assert "not a directory" in error(image=ImageData(source=str(tmp_path / "missing")))
    (tmp_path / "bad.csv").write_text("file,class\na.mp4,x\n")
    with pytest.raises(ValueError, match="missing column.*path, label"):
        read_label_csv(tmp_path / "bad.csv")
    assert "missing column" in error(image=ImageData(source=None), video=VideoData(source=str(tmp_path / "bad.csv")))
    (tmp_path / "ok.csv").write_text("path,label\na.mp4,x\nb.mp4,y\nc.mp4,x\nd.mp4,y\n")
    assert "at most 16" in error(image=ImageData(source=None), video=VideoData(source=str(tmp_path / "ok.csv"), frames=20))


def test_cli_errors_in_one_line(tiny_encoder_dir, tmp_path):
    (tmp_path / "bad.csv").write_text("file,class\na.mp4,x\n")
    for args, expected in (
        ([f"encoder={tmp_path / 'missing'}"], "python pretrain/run.py"),
        ([f"encoder={tiny_encoder_dir}", "image.source=null", f"video.source={tmp_path / 'bad.csv'}",
          f"out={tmp_path / 'out'}"], "missing column"),
    ):
        proc = subprocess.run([sys.executable, "-m", "encoder.probe", *args], capture_output=True,
                              text=True, cwd=tmp_path, timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr
