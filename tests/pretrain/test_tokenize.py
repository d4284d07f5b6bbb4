"""Offline tokenization: shards, special tokens, bad files, resume, rank split, pixel content."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from encoder.tokens import CODE_OFFSET, END, IMAGE_START, VIDEO_START
from pretrain.data.sources import SourceConfig
from pretrain.shards import ShardSet
from pretrain.tokenization import TokenizeConfig, plan_chunks, tokenize_sources

from .conftest import (
    FakePatchTokenizer,
    FakeTokenizer,
    corrupt_copies,
    synthetic_frames,
    write_image,
    write_video,
)

T, R = 4, 32  # 4 frames of 32x32 -> 4x4 tokens a frame with the fake tokenizer
SEQ_LEN = T * 4 * 4 + 2


def config(**overrides) -> TokenizeConfig:
    options = dict(clips_per_video=2, frames=T, stride=2, resolution=R, images_per_sequence=T,
                   files_per_shard=2, images_per_shard=3, batch_size=5, val_fraction=0.25, progress=False)
    return TokenizeConfig(**{**options, **overrides})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """5 good videos and 3 broken ones; 5 good images and 1 broken one."""
    root = tmp_path_factory.mktemp("corpus")
    for i in range(5):
        write_video(root / "videos" / f"part{i % 2}" / f"v{i}.mp4", synthetic_frames(20 + 5 * i, 64 + 16 * i, 48))
    corrupt_copies(root / "videos" / "part0" / "v0.mp4", root / "videos" / "bad")
    for i in range(5):
        write_image(root / "images" / f"im{i}.png", size=(40 + 10 * i, 36), seed=i)
    (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return [
        SourceConfig("vids", str(root / "videos"), "video", 0.7),
        SourceConfig("imgs", str(root / "images"), "image", 0.3),
    ]


@pytest.fixture(scope="module")
def tokenized(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("tokens")
    stats = tokenize_sources(corpus, FakeTokenizer(), out, config(), rank=0, world_size=1)
    return out, stats


def test_bad_files_are_skipped_and_counted(tokenized):
    out, stats = tokenized
    assert sum(stats["skipped"].values()) == 4  # corrupt, truncated, empty video; broken image
    assert stats["skipped"]["empty file"] == 1
    assert stats["sequences"]["vids"]["train"] + stats["sequences"]["vids"]["val"] == 5 * 2  # 2 clips a good video
    index = json.loads((out / "index.json").read_text())
    skipped = sum(sum(split["skipped"].values()) for s in index["sources"] for split in s["splits"].values())
    assert skipped == 4 and index["complete"]


def test_rows_have_special_tokens_and_offset_codes(tokenized):
    out, _ = tokenized
    for source, start in (("vids", VIDEO_START), ("imgs", IMAGE_START)):
        rows = ShardSet(out / source / "train")
        assert rows.row_shape == (SEQ_LEN,) and rows.dtype == np.uint16 and len(rows) > 0
        for i in range(len(rows)):
            row = rows[i]
            assert row[0] == start and row[-1] == END
            body = row[1:-1].astype(int)
            assert body.min() >= CODE_OFFSET and body.max() < CODE_OFFSET + FakeTokenizer.codebook_size


def test_index_describes_the_shards(tokenized):
    out, stats = tokenized
    index = json.loads((out / "index.json").read_text())
    assert (index["content"], index["seq_len"], index["grid"], index["dtype"]) == ("tokens", SEQ_LEN, 4, "uint16")
    assert index["vocab_size"] == 64 + CODE_OFFSET and index["settings"]["tokenizer"]["kind"] == "fake"
    entries = {s["name"]: s for s in index["sources"]}
    assert entries["vids"]["kind"] == "video" and entries["imgs"]["weight"] == 0.3
    for name, entry in entries.items():
        for split, info in entry["splits"].items():
            assert info["rows"] == stats["sequences"][name][split]
            if info["rows"]:
                assert len(ShardSet(out / info["dir"])) == info["rows"]
    assert entries["vids"]["splits"]["val"]["files"] >= 1  # whole files held out
    assert stats["frames"] == sum(s["splits"][k]["frames"] for s in index["sources"] for k in ("train", "val"))


def test_tokens_equal_the_tokenizer_on_the_stored_pixels(corpus, tokenized, tmp_path):
    """Pixel shards (continuous tokenizers) hold exactly the clips the token shards encode."""
    out, _ = tokenized
    stats = tokenize_sources(corpus, FakePatchTokenizer(), tmp_path, config(), rank=0, world_size=1)
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["content"] == "pixels" and index["row_shape"] == [T, R, R, 3] and index["dtype"] == "uint8"
    assert stats["sequences"] == tokenized[1]["sequences"]
    pixels, tokens = ShardSet(tmp_path / "vids" / "train"), ShardSet(out / "vids" / "train")
    assert pixels.row_shape == (T, R, R, 3)
    for i in range(len(tokens)):
        codes = FakeTokenizer().encode(torch.from_numpy(pixels[i].copy())).numpy()
        assert np.array_equal(tokens[i][1:-1], codes.ravel() + CODE_OFFSET)


def _mtimes(out):
    return {p: p.stat().st_mtime_ns for p in out.rglob("shard_*")}


def test_resume_skips_finished_and_redoes_half_written(corpus, tmp_path):
    first = tokenize_sources(corpus, FakeTokenizer(), tmp_path, config(), rank=0, world_size=1)
    before = _mtimes(tmp_path)
    again = tokenize_sources(corpus, FakeTokenizer(), tmp_path, config(), rank=0, world_size=1)
    assert again["shards_written"] == [] and again["shards_resumed"] == len(first["shards_written"])
    assert _mtimes(tmp_path) == before
    # a kill between the data and the JSON: .bin without .json, plus a stale temp file
    name = next(n for n in first["shards_written"] if (tmp_path / f"{n}.bin").exists())
    victim = tmp_path / name
    data = victim.with_suffix(".bin").read_bytes()
    victim.with_suffix(".json").unlink()
    stale = victim.parent / f".{victim.name}.bin.dead.tmp"
    stale.write_bytes(b"half")
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["complete"]  # still the old index until the next run
    third = tokenize_sources(corpus, FakeTokenizer(), tmp_path, config(), rank=0, world_size=1)
    assert third["shards_written"] == [name] and not stale.exists()
    assert victim.with_suffix(".bin").read_bytes() == data  # redone identically (seeded per chunk)
    after = _mtimes(tmp_path)
    assert {p for p in after if after[p] != before.get(p)} <= {victim.with_suffix(".bin"), victim.with_suffix(".json")}


def test_other_settings_into_the_same_dir_is_an_error(corpus, tokenized):
    out, _ = tokenized
    with pytest.raises(ValueError, match="seed"):
        tokenize_sources(corpus, FakeTokenizer(), out, config(seed=1), rank=0, world_size=1)


def test_two_ranks_cover_every_chunk_once(corpus, tokenized, tmp_path):
    chunks = plan_chunks(corpus, config())
    names = [f"{c.source.name}/{c.split}/{c.name}" for c in chunks]
    assert len(set(names)) == len(names)
    rank0 = tokenize_sources(corpus, FakeTokenizer(), tmp_path, config(), rank=0, world_size=2)
    assert not rank0["complete"]
    rank1 = tokenize_sources(corpus, FakeTokenizer(), tmp_path, config(), rank=1, world_size=2)
    written0, written1 = set(rank0["shards_written"]), set(rank1["shards_written"])
    assert written0 and written1 and not written0 & written1 and written0 | written1 == set(names)
    assert rank1["complete"]
    out, _ = tokenized  # the same bytes as one rank doing everything
    for name in names:
        single = out / f"{name}.bin"
        if single.exists():
            assert (tmp_path / f"{name}.bin").read_bytes() == single.read_bytes()


@pytest.mark.parametrize("workers", [0, 2])
def test_tokens_do_not_depend_on_the_decode_workers(corpus, tokenized, tmp_path, workers):
    out, stats = tokenized  # made with the machine's default worker count
    again = tokenize_sources(corpus, FakeTokenizer(), tmp_path, config(decode_workers=workers), rank=0, world_size=1)
    assert again["skipped"] == stats["skipped"] and again["frames"] == stats["frames"]
    names = sorted(p.relative_to(out) for p in out.rglob("shard_*.bin"))
    assert names and names == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("shard_*.bin"))
    assert all((tmp_path / name).read_bytes() == (out / name).read_bytes() for name in names)


@pytest.mark.parametrize("precision, autocast", [("fp32", False), ("bf16", True)])
def test_a_network_tokenizer_encodes_on_the_device_in_the_precision_asked(corpus, tmp_path, capsys, precision, autocast):
    from encoder.tokenizers.fsq import FSQConfig, FSQTokenizer

    tokenizer = FSQTokenizer(FSQConfig(channels=(8, 8, 8)))
    seen = []
    tokenizer.encoder.register_forward_hook(lambda *_: seen.append(torch.is_autocast_enabled("cpu")))
    tokenize_sources(corpus[1:], tokenizer, tmp_path, config(precision=precision, decode_workers=0), device="cpu")
    assert seen and set(seen) == {autocast}
    assert f"tokenize: device cpu, precision {precision} (asked for" in capsys.readouterr().out


def test_rank_and_world_from_the_environment(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    stats = tokenize_sources(corpus[1:], FakeTokenizer(), tmp_path, config())
    assert (stats["rank"], stats["world_size"]) == (1, 3)


def test_all_bad_chunk_is_marked_done(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.mp4").write_bytes(b"")
    source = [SourceConfig("bad", str(bad), "video", 1.0)]
    stats = tokenize_sources(source, FakeTokenizer(), tmp_path / "out", config(val_fraction=0.0))
    assert stats["skipped"] == {"empty file": 1} and stats["complete"]
    again = tokenize_sources(source, FakeTokenizer(), tmp_path / "out", config(val_fraction=0.0))
    assert again["shards_written"] == [] and again["shards_resumed"] == 1


def test_missing_source_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tokenize_sources([SourceConfig("ego4d", str(tmp_path / "ego4d"), "video", 1.0)], FakeTokenizer(), tmp_path / "o", config())


def test_setting_errors_are_one_line(corpus, tmp_path):
    with pytest.raises(ValueError, match="images_per_sequence"):
        tokenize_sources(corpus, FakeTokenizer(), tmp_path, config(images_per_sequence=T + 1))
    with pytest.raises(ValueError, match="multiple"):
        tokenize_sources(corpus, FakeTokenizer(), tmp_path, config(resolution=36))
    with pytest.raises(ValueError, match=">= 1"):
        config(clips_per_video=0)
    shutil.rmtree(tmp_path, ignore_errors=True)
