"""One bad file never ends a run (issue 25): a split left with only bad files falls back, says so, and
the skip report comes before any error, which names files."""
from __future__ import annotations

import numpy as np
import pytest

from pretrain.data.embedded import embedded_frames
from pretrain.data.sources import SourceConfig, list_media, split_files
from toto_robot.video_writer import write_mp4


def _videos(folder, n=3):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        write_mp4(folder / f"v{i}.mp4", [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(6)], fps=10)
    return SourceConfig("mine", str(folder), "video", 1.0)


def test_a_bad_file_that_was_the_whole_val_split_falls_back_to_training_files(tmp_path, capsys):
    source = _videos(tmp_path / "videos")
    (bad,) = split_files(list_media(source), source, 0.34)["val"]
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    train, val = embedded_frames(tmp_path, 8, 4, resolution=32, val_fraction=0.34, sources=[source])
    assert train.shape == (8, 32, 32, 3) and val.shape == (4, 32, 32, 3)
    out = capsys.readouterr().out
    assert f"({bad})" in out and "validation frames come from its training files" in out
    assert "skipped" in out.lower()


def test_a_source_with_only_bad_files_names_them_after_the_skip_report(tmp_path, capsys):
    source = _videos(tmp_path / "videos")
    for path in list_media(source):
        path.write_bytes(b"not a video")
    with pytest.raises(ValueError, match=r"none of its \d files could be read \(.*v\d\.mp4"):
        embedded_frames(tmp_path, 8, 4, resolution=32, val_fraction=0.34, sources=[source])
    assert "skipped" in capsys.readouterr().out.lower()
