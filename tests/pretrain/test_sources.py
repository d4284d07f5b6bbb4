"""Listing data at scale: symlinks followed, exclude by path, evaluation folders refused,
manifests, one walk per run shared with the other ranks, clips per source."""
from __future__ import annotations

import os

import numpy as np
import pytest

from pretrain.data import sources as src
from toto_robot.media.clips import ClipSpec, sample_clips
from pretrain.data.sources import SourceConfig, list_media, listed_once, load_listings, save_listings

from .conftest import synthetic_frames, write_video


def touch(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def rel(source, files):
    return [source.relative(p) for p in files]


def test_symlinked_folders_are_followed_once(tmp_path):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    touch(data, "a/1.jpg", "a/2.jpg")
    touch(elsewhere, "x.jpg", "deep/y.jpg", "deep/z.png")
    os.symlink(elsewhere, data / "linked")
    os.symlink(data, data / "a" / "loop")  # a cycle: must not be walked forever
    source = SourceConfig("s", str(data), "image", 1.0)
    assert rel(source, list_media(source)) == ["a/1.jpg", "a/2.jpg", "linked/deep/y.jpg", "linked/deep/z.png", "linked/x.jpg"]


def test_exclude_matches_paths_and_prunes_folders(tmp_path):
    touch(tmp_path, "keep/1.mp4", "keep/dup_1.mp4", "skip/2.mp4", "nested/skip/3.mp4", "nested/ok/4.mp4")
    source = SourceConfig("s", str(tmp_path), "video", 1.0, exclude=("dup_*", "nested/skip", "skip/*"))
    assert rel(source, list_media(source)) == ["keep/1.mp4", "nested/ok/4.mp4"]


def test_an_evaluation_folder_must_be_excluded(tmp_path):
    touch(tmp_path, "train/n01/1.jpg", "val/n01/2.jpg", "extra/Validation/3.jpg")
    with pytest.raises(ValueError, match=r"val looks like the dataset's evaluation split; add exclude: \[val\]"):
        list_media(SourceConfig("imagenet", str(tmp_path), "image", 1.0))
    with pytest.raises(ValueError, match=r"extra/Validation looks like .* add exclude: \[extra/Validation\]"):
        list_media(SourceConfig("imagenet", str(tmp_path), "image", 1.0, exclude=("val",)))
    source = SourceConfig("imagenet", str(tmp_path), "image", 1.0, exclude=("val", "Validation"))  # a name matches at any depth
    assert rel(source, list_media(source)) == ["train/n01/1.jpg"]


def test_manifests_list_paths_with_optional_labels(tmp_path):
    touch(tmp_path, "clips/a.mp4", "clips/b.mp4", "clips/c.mp4")
    (tmp_path / "kinetics.csv").write_text(f"label,path\nabseiling,clips/a.mp4\nbowling,{tmp_path / 'clips/b.mp4'}\n,clips/notes.txt\n")
    (tmp_path / "list.txt").write_text("# comment\nclips/c.mp4 12\n\nclips/a.mp4\n")
    (tmp_path / "bare.csv").write_text("clips/b.mp4,3\nclips/c.mp4,4\n")  # no header
    by_csv = SourceConfig("k", str(tmp_path / "kinetics.csv"), "video", 1.0)
    assert rel(by_csv, list_media(by_csv)) == ["clips/a.mp4", "clips/b.mp4"]  # absolute made relative, .txt dropped
    by_txt = SourceConfig("k", str(tmp_path / "list.txt"), "video", 1.0, exclude=("clips/a.mp4",))
    assert rel(by_txt, list_media(by_txt)) == ["clips/c.mp4"]
    bare = SourceConfig("k", str(tmp_path / "bare.csv"), "video", 1.0)
    assert rel(bare, list_media(bare)) == ["clips/b.mp4", "clips/c.mp4"]


def test_a_run_walks_each_source_once_and_other_ranks_read_its_listing(tmp_path, monkeypatch):
    touch(tmp_path / "data", "1.jpg", "2.jpg")
    source = SourceConfig("s", str(tmp_path / "data"), "image", 1.0)
    walks = []
    real_walk = src.os.walk
    monkeypatch.setattr(src.os, "walk", lambda *a, **k: walks.append(a) or real_walk(*a, **k))
    with listed_once():
        first = list_media(source)
        touch(tmp_path / "data", "3.jpg")
        assert list_media(source) == first and len(walks) == 1  # the run's plan stays as listed
        save_listings([source], tmp_path / "listing")
    assert len(list_media(source)) == 3 and len(walks) == 2  # outside a run: walked afresh
    with listed_once():  # another rank: reads rank 0's listing, does not walk
        load_listings([source], tmp_path / "listing")
        assert list_media(source) == first and len(walks) == 2
    with listed_once():  # a listing made with other settings is not taken
        other = SourceConfig("s", str(tmp_path / "data"), "image", 1.0, exclude=("1.jpg",))
        load_listings([other], tmp_path / "listing")
        assert len(list_media(other)) == 2 and len(walks) == 3


def test_clips_per_minute_follow_the_video_length(tmp_path):
    path = write_video(tmp_path / "two_minutes.mp4", synthetic_frames(1200, 16, 16), fps=10, gop=12)
    spec = ClipSpec(frames=4, stride=2, resolution=16)
    assert len(sample_clips(path, 4, spec, np.random.default_rng(0), per_minute=1.5)) == 3
    assert len(sample_clips(path, 4, spec, np.random.default_rng(0))) == 4
    with pytest.raises(ValueError, match="not both"):
        SourceConfig("s", str(tmp_path), "video", 1.0, clips_per_video=2, clips_per_minute=1.0)
