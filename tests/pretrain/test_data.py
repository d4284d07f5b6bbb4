"""Decoding, clip geometry, images, sources, mixtures and the embedded corpus."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from encoder.tokens import CODE_OFFSET, END, IMAGE_START, build_sequence
from pretrain.data import embedded
from toto_robot.media import clips, video
from toto_robot.media.images import (
    load_image,
    pack_groups,
    resized_size,
    sample_image,
)
from pretrain.data.mixture import Mixture
from pretrain.data.sources import PAPER_MIX, SourceConfig, list_media, paper_mix, split_files
from toto_robot.media.errors import BadMediaError, SkipReport

from .conftest import frame_index, synthetic_frames, write_image, write_video

# --- decoding ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["small", "large", "mkv"])
def test_probe_and_decode_counts(media, name):
    info = video.probe_video(media[name])
    width, height = (160, 120) if name == "large" else (64, 48)
    assert (info.frames, info.width, info.height) == (40, width, height) and info.fps == pytest.approx(10)
    frames = video.read_frames(media[name])
    assert frames.shape == (40, height, width, 3) and frames.dtype == np.uint8
    assert [frame_index(f) for f in frames] == list(range(40))


def test_read_selected_frames_in_request_order(media):
    frames = video.read_frames(media["small"], [7, 2, 7, 30])
    assert frames.shape == (4, 48, 64, 3)
    assert [frame_index(f) for f in frames] == [7, 2, 7, 30]
    resized = video.read_frames(media["large"], [3], short_side=32)
    assert resized.shape == (1, 32, 43, 3)


def test_seeking_matches_decoding_from_start(media, monkeypatch):
    wanted = [41, 30, 33]
    reference = video.read_frames(media["long"], wanted)
    monkeypatch.setattr(video, "SEEK_AFTER", 5)
    assert np.array_equal(video.read_frames(media["long"], wanted), reference)
    assert [frame_index(f) for f in reference] == wanted


def test_clips_of_a_long_video_seek_each_instead_of_decoding_through(tmp_path, monkeypatch):
    # 1,200 frames (2 min at 10 fps), a key frame every 12: four clips of 16 frames at stride 4 (61-frame spans)
    frames = synthetic_frames(1200, 32, 32)
    path = write_video(tmp_path / "long.mp4", frames, gop=12)
    starts = [300, 900, 520, 1100]
    clips_wanted = [start + 4 * np.arange(16) for start in starts]
    with monkeypatch.context() as patch:  # the reference: one pass from the start, no seeking, no threads
        patch.setattr(video, "SEEK_AFTER", 10**9)
        one_pass = {}
        reference = video.read_frames(path, np.concatenate(clips_wanted), stats=one_pass, threads=False)
    stats = {}
    got = video.read_clips(path, clips_wanted, stats=stats)
    assert np.array_equal(np.concatenate(got), reference)  # the same frames, in each clip's order
    assert stats["decoded"] <= 4 * (12 + 61)  # each clip: from its key frame to its end
    assert one_pass["decoded"] == 1100 + 61  # through the whole video up to the last clip's end


@pytest.mark.parametrize("name, reasons", [
    ("corrupt", {"unreadable"}), ("truncated", {"unreadable"}), ("cut_after_header", {"truncated"}),
    ("empty", {"empty file"}),
])
def test_bad_videos_raise_bad_media(media, name, reasons):
    with pytest.raises(BadMediaError) as error:  # probe, then decode
        clips.sample_clip(media[name], np.random.default_rng(0), clips.ClipSpec(16, 2, 32))
    assert error.value.reason in reasons and error.value.path == media[name]
    assert "\n" not in str(error.value)
    with pytest.raises(BadMediaError):
        video.read_frames(media[name], [0, 35])


def test_request_past_the_end_is_truncated(media):
    with pytest.raises(BadMediaError, match="truncated"):
        video.read_frames(media["small"], [5, 40])


# --- clips ------------------------------------------------------------------------------------

def test_clip_indices_and_stride_policy():
    spec = clips.ClipSpec(frames=16, stride=4, resolution=32)
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = clips.clip_indices(200, spec, rng)
        assert len(idx) == 16 and np.all(np.diff(idx) == 4) and idx[0] >= 0 and idx[-1] < 200
    assert clips.fitting_stride(61, 16, 4) == 4
    assert clips.fitting_stride(60, 16, 4) == 3  # lowered for short videos
    assert clips.fitting_stride(16, 16, 4) == 1
    assert clips.fitting_stride(15, 16, 4) is None


def test_crop_clip_same_crop_for_every_frame():
    base = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frames = np.stack([base] * 5)
    out = clips.crop_clip(frames, 32, np.random.default_rng(1))
    assert out.shape == (5, 32, 32, 3) and out.dtype == np.uint8
    assert all(np.array_equal(out[0], f) for f in out[1:])
    assert resized_size(64, 48, 32) == (43, 32) and resized_size(120, 160, 128) == (128, 171)


def test_sample_clip_geometry_and_determinism(media):
    spec = clips.ClipSpec(frames=4, stride=4, resolution=32)
    clip = clips.sample_clip(media["large"], np.random.default_rng(3), spec)
    assert clip.shape == (4, 32, 32, 3) and clip.dtype == np.uint8
    indices = [frame_index(f) for f in clip]
    assert np.all(np.diff(indices) == 4)
    # static green/blue picture: every frame of the clip shows the same crop
    assert np.abs(clip[1:, ..., 1:].astype(int) - clip[:1, ..., 1:]).max() <= 12
    again = clips.sample_clip(media["large"], np.random.default_rng(3), spec)
    assert np.array_equal(clip, again)
    crops = {clips.sample_clip(media["large"], np.random.default_rng(s), spec)[0, 0, 0, 1] for s in range(8)}
    assert len(crops) > 1  # the crop position is random across seeds


def test_short_videos_lower_the_stride_or_are_skipped(media, tmp_path):
    spec = clips.ClipSpec(frames=16, stride=4, resolution=32)  # needs 61 frames at stride 4
    clip = clips.sample_clip(media["small"], np.random.default_rng(0), spec)  # 40 frames -> stride 2
    assert np.all(np.diff([frame_index(f) for f in clip]) == 2)
    tiny = write_video(tmp_path / "tiny.mp4", synthetic_frames(10, 32, 32))
    with pytest.raises(BadMediaError, match="too short"):
        clips.sample_clip(tiny, np.random.default_rng(0), spec)


def test_several_clips_decode_once(media):
    out = clips.sample_clips(media["large"], 3, clips.ClipSpec(4, 4, 32), np.random.default_rng(0))
    assert out.shape == (3, 4, 32, 32, 3)


# --- images -----------------------------------------------------------------------------------

def test_images_load_as_rgb_and_crop(tmp_path):
    for mode in ("L", "RGBA", "P"):
        path = write_image(tmp_path / f"{mode}.png", size=(50, 70), mode=mode)
        assert load_image(path).mode == "RGB"
        crop = sample_image(path, np.random.default_rng(0), 32)
        assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(BadMediaError, match="unreadable"):
        load_image(tmp_path / "bad.jpg")


def test_pack_groups_uses_every_image():
    groups = pack_groups(37, 2, 16, np.random.default_rng(0))
    assert groups.shape == (5, 16)
    counts = np.bincount(groups.ravel(), minlength=37)
    assert counts.min() >= 2 and counts.sum() == 80
    assert pack_groups(0, 1, 16, np.random.default_rng(0)).shape == (0, 16)


def test_pack_sequence_tokens():
    codes = np.arange(16 * 2 * 2).reshape(16, 2, 2) % 64
    row = build_sequence(codes, "image")
    assert row.dtype == np.uint16 and len(row) == 16 * 4 + 2
    assert row[0] == IMAGE_START and row[-1] == END
    assert np.array_equal(row[1:-1], codes.ravel() + CODE_OFFSET)


# --- sources ----------------------------------------------------------------------------------

def test_list_media_recursive_by_extension(tmp_path):
    write_image(tmp_path / "a" / "x.PNG")
    write_image(tmp_path / "a" / "b" / "y.jpg")
    write_image(tmp_path / "a" / "skip_me.png")
    (tmp_path / "a" / "notes.txt").write_text("hi")
    (tmp_path / "a" / ".hidden.png").write_bytes(b"")
    files = list_media(SourceConfig("imgs", str(tmp_path / "a"), "image", 1.0, exclude=("skip_*",)))
    assert [f.relative_to(tmp_path / "a").as_posix() for f in files] == ["b/y.jpg", "x.PNG"]
    with pytest.raises(ValueError, match="no video files"):
        list_media(SourceConfig("vids", str(tmp_path / "a"), "video", 1.0))


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        list_media(SourceConfig("kinetics", str(tmp_path / "nope"), "video", 0.1))
    message = str(error.value)
    assert "kinetics" in message and "does not exist" in message and "\n" not in message


def test_bad_source_configs():
    with pytest.raises(ValueError, match="kind"):
        SourceConfig("x", "p", "audio", 1.0)
    with pytest.raises(ValueError, match="weight"):
        SourceConfig("x", "p", "video", -1.0)


def test_split_keeps_groups_together_and_is_deterministic(tmp_path):
    files = [tmp_path / "t" / "videos" / f"episode_{i:05d}_{cam}.mp4" for i in range(20) for cam in ("wrist", "top")]
    source = SourceConfig("robot", str(tmp_path), "video", 1.0, group=embedded.ROBOT_GROUP)
    split = split_files(files, source, 0.2)
    assert len(split["val"]) == 8 and len(split["train"]) == 32
    episodes = lambda paths: {p.name[:13] for p in paths}  # noqa: E731
    assert not episodes(split["train"]) & episodes(split["val"])
    assert split_files(list(reversed(files)), source, 0.2) == split
    one = split_files(files[:1], source, 0.5)
    assert one == {"train": files[:1], "val": []}


def test_paper_mix_preset():
    assert [(s.name, s.kind, s.weight) for s in PAPER_MIX] == [
        ("imagenet", "image", 0.2), ("ego4d", "video", 0.1), ("kinetics", "video", 0.1), ("howto100m", "video", 0.6),
    ]
    assert [s.path for s in paper_mix("/datasets")] == [
        "/datasets/imagenet", "/datasets/ego4d", "/datasets/kinetics", "/datasets/howto100m",
    ]


def test_mixture_ratios_over_many_draws():
    mixture = Mixture([s.weight for s in PAPER_MIX], seed=0)
    counts = np.bincount(mixture.draws(0, 20000), minlength=4) / 20000
    assert np.allclose(counts, [0.2, 0.1, 0.1, 0.6], atol=0.015)


def test_skip_report_counts_by_reason(capsys):
    report = SkipReport()
    assert report.report() == "skipped files: none"
    report.add(BadMediaError("a.mp4", "unreadable", "junk"))
    report.add(BadMediaError("b.mp4", "unreadable"))
    report.add("c.mp4", "too short")
    other = SkipReport()
    other.add("d.png", "empty file")
    report.merge(other)
    assert report.as_dict() == {"empty file": 1, "too short": 1, "unreadable": 2} and report.total == 4
    report.print()
    out = capsys.readouterr().out
    assert out.startswith("skipped files: 4") and "unreadable: 2 (e.g. a.mp4, b.mp4)" in out


# --- the embedded corpus ----------------------------------------------------------------------

def fake_recorder(out: Path, episodes_per_task: int, image_size: int, seed: int, progress: bool) -> None:
    """Stands in for sim.record: the same file layout, tiny synthetic episodes."""
    for task in ("franka_pick", "kuka_cabinet"):
        for i in range(episodes_per_task):
            for camera in ("wrist", "third_person"):
                path = out / task / "videos" / f"episode_{i:05d}_{camera}.mp4"
                if not path.exists():
                    write_video(path, synthetic_frames(20, image_size, image_size))


def test_embedded_package_media_exist():
    sources = embedded.embedded_sources("unused", robot=False)
    assert [(s.name, s.kind) for s in sources] == [("clips", "video"), ("photos", "image")]
    clip_files, photo_files = (list_media(s) for s in sources)
    assert {p.name for p in clip_files} >= {"bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"}
    assert "carphone_distorted.mp4" not in {p.name for p in clip_files}
    assert len(photo_files) >= 15 and {"astronaut.png", "chelsea.png", "coffee.png"} <= {p.name for p in photo_files}
    assert not any(p.name.startswith("chessboard") for p in photo_files)


def test_embedded_robot_videos_use_the_recorder(monkeypatch, tmp_path):
    import sim.record

    seen = []
    monkeypatch.setattr(sim.record, "record", lambda cfg: seen.append(cfg))
    embedded.record_robot_videos(tmp_path / "robot", 3, 64, 0, False)
    (cfg,) = seen
    assert (cfg.task, cfg.episodes, cfg.image_size, cfg.video, cfg.demos) == ("all", 3, 64, True, False)
    assert sorted(cfg.cameras) == ["third_person", "wrist"] and cfg.out == str(tmp_path / "robot")


def test_embedded_sources_and_frames(monkeypatch, tmp_path):
    monkeypatch.setattr(embedded, "record_robot_videos", fake_recorder)
    sources = embedded.embedded_sources(tmp_path, episodes_per_task=4, image_size=32)
    assert [s.name for s in sources] == ["robot", "clips", "photos"]
    weights = {s.name: s.weight for s in sources}
    assert weights["robot"] > 0.5 and sum(weights.values()) == pytest.approx(1.0)
    robot = sources[0]
    split = split_files(list_media(robot), robot, 0.25)
    assert len(list_media(robot)) == 16 and len(split["val"]) == 4  # 2 of 8 episodes, both cameras
    # photos only (the package clips are large to decode): fast, and covers the image path
    train, val = embedded.embedded_frames(tmp_path, train=50, val=10, resolution=32, sources=[robot, sources[2]])
    assert train.shape == (50, 32, 32, 3) and val.shape == (10, 32, 32, 3) and train.dtype == np.uint8
    again, _ = embedded.embedded_frames(tmp_path, train=50, val=10, resolution=32, sources=[robot, sources[2]])
    assert np.array_equal(train, again)


def test_embedded_robot_videos_really_record(tmp_path):
    """One short episode per task through the real recorder; the second call is cached."""
    sources = embedded.embedded_sources(tmp_path, episodes_per_task=1, image_size=32, progress=False)
    files = list_media(sources[0])
    assert len(files) == 8  # 4 tasks x 2 cameras
    assert video.probe_video(files[0]).width == 32
    mtimes = [p.stat().st_mtime_ns for p in files]
    embedded.embedded_sources(tmp_path, episodes_per_task=1, image_size=32, progress=False)
    assert [p.stat().st_mtime_ns for p in files] == mtimes
