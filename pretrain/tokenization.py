"""Offline tokenization: media sources -> token shards the training loop memory-maps.

Layout of `out_dir`:

    index.json                          what the training loop reads (see `build_index`)
    <source>/train/shard_00000.bin/.json   uint16 rows [start, codes..., 2] of length T*g*g+2
    <source>/val/shard_00000.bin/.json     the same for the files held out for validation

Work plan. Each source's files are listed (sorted), split into train/val by whole files (or
file groups, see `SourceConfig.group`) and cut into chunks of `files_per_shard` videos or
`images_per_shard` images. Chunk i of the global plan (sources in order, train then val)
becomes shard `<source>/<split>/shard_<k>` with k its number within that split, so names,
contents and random crops (seeded by seed, source, split, k) do not depend on how many ranks
run or in which order. Chunks are dealt to ranks by estimated cost (`assign_ranks`: frames to
encode, largest first to the least loaded rank), so a rank given the 64-video chunks does not
work for hours while one given 1,024-image chunks waits. Under torchrun every rank calls
`tokenize_sources` (rank and world size default to the RANK/WORLD_SIZE environment) without
any process group: ranks share nothing but the output directory. Each rank rewrites
index.json from the shards on disk when it ends, so the last rank to finish leaves
"complete": true (the training loop should check it).

Resume. A chunk whose shard is finished (pretrain.shards.shard_finished; or its `.empty.json`
marker when every file of the chunk was bad) is never redone; a half-written one (stale temp
file, .bin without .json) is cleaned and redone. index.json remembers the settings, so rerunning
into the same directory with another tokenizer, clip geometry or seed is a one-line error
rather than a mix of incompatible shards; sources may be added or reweighted, but a finished
shard whose files no longer match the listing is an error too.

Content. Discrete tokenizers give uint16 token rows. Continuous (patch) tokenizers have no
codes, so their shards hold the uint8 pixel rows (T, R, R, 3) instead and index.json says
"content": "pixels"; the training loop then tokenizes on the fly.

Videos give `clips_per_video` clips each (toto_robot.media.clips: stride lowered for short videos,
fewer than T frames skipped). Images are packed `images_per_sequence` per row; each image is
used `image_repeats` times (each time its own random crop), so a chunk of n readable images
yields ceil(n * image_repeats / images_per_sequence) rows (the last one filled up at random).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from encoder import tokens as token_ids
from toto_robot.media.images import crop, pack_groups, random_crop_box
from pretrain.data.sources import DEFAULT_VAL_FRACTION, SourceConfig, list_media, split_files
from toto_robot.media.errors import BadMediaError, SkipReport
from pretrain.media_loader import default_workers, media_items
from pretrain.shards import shard_finished, write_shard
from toto_robot.compute import PRECISIONS, Compute, resolve
from toto_robot.io import TEMP_SUFFIX, atomic_write
from toto_robot.resume import check_resumable

SPLITS = ("train", "val")
INDEX = "index.json"


@dataclass
class TokenizeConfig:
    clips_per_video: int = 4
    frames: int = 16  # T
    stride: int = 4  # every 4th frame (lowered for short videos, see toto_robot.media.clips)
    resolution: int = 128  # R: short side resized to R, then a random R x R crop
    images_per_sequence: int = 16  # must equal `frames` when videos and images are mixed
    image_repeats: int = 1  # uses of each image per pass, each with its own crop
    files_per_shard: int = 64  # videos per chunk/shard
    images_per_shard: int = 1024  # images per chunk/shard
    batch_size: int = 64  # frames per tokenizer.encode call (a chunk's frames are batched across its files)
    # fp32 by default: the frozen encoder tokenizes frames in fp32 at run time (encoder/frozen.py), and bf16 changes
    # some of the FSQ codes (docs/benchmarks.md, measurements behind defaults), so pre-training would see other tokens than
    # deployment. On a GPU fp32 convolutions already use TF32 tensor cores. bf16 (or auto) trades that for speed
    precision: str = "fp32"
    # DataLoader processes decoding media; None: 0 with a CPU tokenizer, cores less one with a GPU (media_loader)
    decode_workers: Optional[int] = None
    seed: int = 0
    val_fraction: float = DEFAULT_VAL_FRACTION  # share of each source's files (groups) held out for val
    progress: bool = True  # a tqdm bar on rank 0

    def __post_init__(self):
        positive = ("clips_per_video", "frames", "stride", "resolution", "images_per_sequence", "image_repeats",
                    "files_per_shard", "images_per_shard", "batch_size")
        bad = [f"{name}={getattr(self, name)}" for name in positive if getattr(self, name) < 1]
        if self.decode_workers is not None and self.decode_workers < 0:
            bad.append(f"decode_workers={self.decode_workers}")
        if bad:
            raise ValueError(f"tokenize settings must be >= 1: {', '.join(bad)}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction={self.val_fraction} must be in [0, 1)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"tokenize.precision={self.precision!r}: use one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class Chunk:
    """One unit of work: some files of one source and split, becoming one shard."""

    index: int  # position in the global plan
    source: SourceConfig
    split: str
    number: int  # shard number within (source, split)
    files: tuple[Path, ...]

    @property
    def name(self) -> str:
        return f"shard_{self.number:05d}"

    def directory(self, out_dir: Path) -> Path:
        return out_dir / self.source.name / self.split

    def seed(self, base: int, *more: int) -> list[int]:
        """The seed of this chunk's randomness (image packing and crops; with a file's position, its
        clips): fixed by (seed, source, split, shard number), never by the rank or the worker."""
        return [base, zlib.crc32(self.source.name.encode()), SPLITS.index(self.split), self.number, *more]

    def relative_files(self) -> list[str]:
        return [self.source.relative(p) for p in self.files]


def plan_chunks(sources: Sequence[SourceConfig], cfg: TokenizeConfig) -> list[Chunk]:
    """The global, deterministic work plan (every rank computes the same one)."""
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be unique, got {names}")
    chunks = []
    for source in sources:
        per_chunk = cfg.images_per_shard if source.kind == "image" else cfg.files_per_shard
        splits = split_files(list_media(source), source, cfg.val_fraction)
        for split in SPLITS:
            files = splits[split]
            for number, start in enumerate(range(0, len(files), per_chunk)):
                chunks.append(Chunk(len(chunks), source, split, number, tuple(files[start : start + per_chunk])))
    return chunks


def chunk_cost(chunk: Chunk, cfg: TokenizeConfig) -> int:
    """Frames the chunk will encode (the tokenizer's work, and roughly the decoding's)."""
    if chunk.source.kind == "video":  # (clips_per_minute: unknown before probing, estimated as the default count)
        return len(chunk.files) * (chunk.source.clips_per_video or cfg.clips_per_video) * cfg.frames
    return len(chunk.files) * cfg.image_repeats


def assign_ranks(chunks: Sequence[Chunk], cfg: TokenizeConfig, world_size: int) -> list[int]:
    """The rank of each chunk: longest-processing-time first, each to the least loaded rank.

    A pure function of the plan and the world size (every rank computes the same one); ties go
    to the lower chunk index and rank. Greedy LPT is within 4/3 of the best possible makespan.
    """
    ranks, load = [0] * len(chunks), [0] * world_size
    for i in sorted(range(len(chunks)), key=lambda i: (-chunk_cost(chunks[i], cfg), i)):
        rank = min(range(world_size), key=lambda r: (load[r], r))
        ranks[i] = rank
        load[rank] += chunk_cost(chunks[i], cfg)
    return ranks


def describe_tokenizer(tokenizer) -> dict:
    """What made the tokens: class, geometry and a fingerprint of the weights (if it has any)."""
    info = {
        "class": f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}",
        "kind": getattr(tokenizer, "kind", "") or type(tokenizer).__name__,
        "downsample": int(tokenizer.downsample),
        "codebook_size": None if getattr(tokenizer, "codebook_size", None) is None else int(tokenizer.codebook_size),
        "discrete": bool(getattr(tokenizer, "discrete", True)),
    }
    if isinstance(tokenizer, torch.nn.Module):
        digest = hashlib.sha1()
        for name, tensor in sorted(tokenizer.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        info["weights_sha1"] = digest.hexdigest()
    return info


def _settings(sources, tokenizer, cfg: TokenizeConfig) -> dict:
    """Everything that decides the shards' content (compared on resume).

    Sources are not in it: sources may be added, reweighted or moved, and each shard's JSON
    lists its files, which `_chunk_state` compares with the plan instead.
    """
    tok = describe_tokenizer(tokenizer)
    discrete = tok["discrete"]
    if cfg.resolution % tok["downsample"]:
        raise ValueError(f"resolution {cfg.resolution} is not a multiple of the tokenizer's downsample {tok['downsample']}")
    kinds = {s.kind for s in sources}
    if kinds == {"video", "image"} and cfg.images_per_sequence != cfg.frames:
        raise ValueError(
            f"images_per_sequence={cfg.images_per_sequence} must equal frames={cfg.frames} so image and video rows batch together"
        )
    if discrete:
        if tok["codebook_size"] is None:
            raise ValueError("a discrete tokenizer needs a codebook_size")
        if token_ids.vocab_size(tok["codebook_size"]) > np.iinfo(np.uint16).max + 1:
            raise ValueError(f"codebook_size={tok['codebook_size']} does not fit uint16 token ids")
    keys = ("clips_per_video", "frames", "stride", "resolution", "images_per_sequence", "image_repeats",
            "files_per_shard", "images_per_shard", "seed", "val_fraction")
    return {
        "content": "tokens" if discrete else "pixels",
        **{key: getattr(cfg, key) for key in keys},
        "grid": cfg.resolution // tok["downsample"],
        "tokenizer": tok if discrete else None,  # pixel shards suit any continuous tokenizer
    }


def _check_settings(out_dir: Path, settings: dict) -> None:
    path = out_dir / INDEX
    if not path.is_file():
        return

    check_resumable(out_dir, "shards", json.loads(path.read_text()).get("settings", {}), settings,
                    hint="use another out_dir or delete it")


def _chunk_state(chunk: Chunk, out_dir: Path) -> dict | None:
    """The finished shard's (or empty marker's) metadata; None if the chunk still has to be done."""
    directory = chunk.directory(out_dir)
    if shard_finished(directory, chunk.name):
        meta = json.loads((directory / f"{chunk.name}.json").read_text())
    elif (directory / f"{chunk.name}.empty.json").is_file():
        meta = json.loads((directory / f"{chunk.name}.empty.json").read_text())
    else:
        return None
    if meta.get("files") != chunk.relative_files():
        raise ValueError(
            f"{directory / chunk.name} was made from other files than {chunk.source.name!r} now lists; "
            "use another out_dir or delete it"
        )
    return meta


class _Encoder:
    """Frames -> codes in batches, with the checks a foreign tokenizer deserves."""

    def __init__(self, tokenizer, batch_size: int, grid: int, compute: Compute | None = None):
        self.tokenizer, self.batch_size, self.grid, self.compute = tokenizer, batch_size, grid, compute
        self.codebook_size = getattr(tokenizer, "codebook_size", None)

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(frames), self.batch_size):
            with self.compute.autocast() if self.compute else contextlib.nullcontext():
                codes = self.tokenizer.encode(torch.from_numpy(np.ascontiguousarray(frames[start : start + self.batch_size])))
            out.append(torch.as_tensor(codes).cpu().numpy())
        codes = np.concatenate(out)
        if codes.shape != (len(frames), self.grid, self.grid):
            raise ValueError(f"tokenizer returned codes of shape {codes.shape}, expected {(len(frames), self.grid, self.grid)}")
        if codes.min() < 0 or codes.max() >= self.codebook_size:
            raise ValueError(f"tokenizer returned codes in [{codes.min()}, {codes.max()}], outside [0, {self.codebook_size})")
        return codes


def _chunk_pixels(chunk: Chunk, media: list, cfg: TokenizeConfig, skips: SkipReport) -> np.ndarray | None:
    """uint8 rows (n, T, R, R, 3) of one chunk from its files' decoded media (pretrain.media_loader):
    video clips as they are; images packed into sequences with crops drawn from the chunk's seed."""
    good = []
    for item in media:
        if isinstance(item, BadMediaError):
            skips.add(item)
        else:
            good.append(item)
    if chunk.source.kind == "video":
        return np.concatenate(good) if good else None
    rng = np.random.default_rng(chunk.seed(cfg.seed))
    groups = pack_groups(len(good), cfg.image_repeats, cfg.images_per_sequence, rng)
    R = cfg.resolution
    if not len(groups):
        return None
    return np.stack([[crop(good[i], random_crop_box(*good[i].shape[:2], R, rng), R) for i in g] for g in groups])


def _do_chunk(chunk: Chunk, media: list, out_dir: Path, settings: dict, encode, cfg: TokenizeConfig, skips: SkipReport) -> dict:
    """Tokenize one chunk into its shard (or empty marker); return its metadata. Skips go to `skips` too.

    The chunk's frames are encoded together, in batches across its files."""
    directory = chunk.directory(out_dir)
    for stale in directory.glob(f".{chunk.name}.*{TEMP_SUFFIX}"):  # only this chunk's: other ranks share the dir
        stale.unlink(missing_ok=True)
    chunk_skips = SkipReport()
    pixels = _chunk_pixels(chunk, media, cfg, chunk_skips)
    kind = chunk.source.kind
    rows = None
    if pixels is not None:
        if encode is None:
            rows = pixels
        else:
            codes = encode(pixels.reshape(-1, *pixels.shape[2:])).reshape(*pixels.shape[:2], settings["grid"], settings["grid"])
            rows = np.stack([token_ids.build_sequence(c, kind) for c in codes])
    meta = {
        "source": chunk.source.name, "kind": kind, "split": chunk.split, "content": settings["content"],
        "frames": 0 if pixels is None else pixels.shape[0] * pixels.shape[1], "skipped": chunk_skips.as_dict(),
        "files": chunk.relative_files(),
    }
    if rows is not None:
        write_shard(directory, chunk.name, rows, **meta)
        meta["rows"] = len(rows)
    else:
        meta["rows"] = 0
        with atomic_write(directory / f"{chunk.name}.empty.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=1))
    skips.merge(chunk_skips)
    return meta


def build_index(out_dir: str | os.PathLike, sources: Sequence[SourceConfig], chunks: Sequence[Chunk], settings: dict) -> dict:
    """index.json from the shards on disk (all ranks, all runs), written atomically.

    Per source and split: the shard directory (relative to out_dir), rows, shards, frames and
    skipped files by reason; plus seq_len, row shape/dtype, the token-id scheme and whether every
    planned chunk is finished ("complete"). Any rank may call it; the last call wins.
    """
    out_dir = Path(out_dir)
    T, g = settings["frames"], settings["grid"]
    entries = {
        s.name: {
            "name": s.name, "kind": s.kind, "weight": s.weight, "path": str(s.path),
            "splits": {split: {"dir": f"{s.name}/{split}", "files": 0, "shards": 0, "rows": 0, "frames": 0, "skipped": {}}
                       for split in SPLITS},
        }
        for s in sources
    }
    done = 0
    for chunk in chunks:
        entry = entries[chunk.source.name]["splits"][chunk.split]
        entry["files"] += len(chunk.files)
        meta = _chunk_state(chunk, out_dir)
        if meta is None:
            continue
        done += 1
        entry["shards"] += meta["rows"] > 0
        entry["rows"] += meta["rows"]
        entry["frames"] += meta["frames"]
        for reason, count in meta["skipped"].items():
            entry["skipped"][reason] = entry["skipped"].get(reason, 0) + count
    pixels = settings["content"] == "pixels"
    index = {
        "content": settings["content"],
        "seq_len": token_ids.sequence_length(T, g),
        "grid": g,
        "frames": T,
        "row_shape": [T, settings["resolution"], settings["resolution"], 3] if pixels else [token_ids.sequence_length(T, g)],
        "dtype": "uint8" if pixels else "uint16",
        "vocab_size": None if pixels else token_ids.vocab_size(settings["tokenizer"]["codebook_size"]),
        "token_ids": {"pad": token_ids.PAD, "video_start": token_ids.VIDEO_START, "end": token_ids.END,
                      "image_start": token_ids.IMAGE_START, "code_offset": token_ids.CODE_OFFSET},
        "sources": list(entries.values()),
        "chunks": {"total": len(chunks), "done": done},
        "complete": done == len(chunks),
        "settings": settings,
    }
    with atomic_write(out_dir / INDEX) as tmp:
        tmp.write_text(json.dumps(index, indent=1))
    return index


def _rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    rank = int(os.environ.get("RANK", "0")) if rank is None else int(rank)
    world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else int(world_size)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank}, world_size={world_size}: need 0 <= rank < world_size")
    return rank, world_size


def tokenize_sources(
    sources: Sequence[SourceConfig],
    tokenizer,
    out_dir: str | os.PathLike,
    cfg: TokenizeConfig | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    device: str | torch.device = "auto",
) -> dict:
    """Tokenize this rank's share of `sources` into `out_dir`; return this run's stats.

    `tokenizer`: `.encode(uint8 (N, H, W, 3) tensor) -> LongTensor (N, g, g)`, `.downsample`,
    `.codebook_size`, `.discrete` (nn.Modules are put in eval mode). Stats: sequences and frames
    written by this call per source/split, frames/s, skipped files by reason, shards written and
    resumed, and the index's "complete" flag. `device`: where an nn.Module tokenizer encodes
    (auto|cpu|cuda|cuda:N), in `cfg.precision`. Files are decoded by `cfg.decode_workers`
    DataLoader processes (pretrain/media_loader.py) while this process encodes.
    """
    out_dir, cfg = Path(out_dir), cfg or TokenizeConfig()
    rank, world_size = _rank_world(rank, world_size)
    settings = _settings(sources, tokenizer, cfg)
    chunks = plan_chunks(sources, cfg)
    _check_settings(out_dir, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    build_index(out_dir, sources, chunks, settings)
    compute = None
    if isinstance(tokenizer, torch.nn.Module):
        compute = resolve(device, cfg.precision)
        tokenizer.to(compute.device).eval()
    encode = _Encoder(tokenizer, cfg.batch_size, settings["grid"], compute) if settings["content"] == "tokens" else None
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    device_type = compute.device.type if compute is not None else "cpu"
    workers = default_workers(device_type, local_world) if cfg.decode_workers is None else cfg.decode_workers

    mine = [c for c, r in zip(chunks, assign_ranks(chunks, cfg, world_size)) if r == rank]
    todo = [c for c in mine if _chunk_state(c, out_dir) is None]
    if todo and rank == 0 and isinstance(tokenizer, torch.nn.Module):
        compute.announce("tokenize")
        print(f"tokenize: {workers} decode worker{'s' * (workers != 1)}", flush=True)
    sequences = {s.name: dict.fromkeys(SPLITS, 0) for s in sources}
    skips, frames, written = SkipReport(), 0, []
    start = time.perf_counter()
    bar = tqdm(total=sum(len(c.files) for c in todo), unit="file", desc="tokenize", disable=not cfg.progress or rank != 0)
    try:
        media: list = []
        for i, j, item in media_items(todo, cfg, workers):
            media.append(item)
            bar.update(1)
            chunk = todo[i]
            if j < len(chunk.files) - 1:
                continue
            bar.set_description(f"{chunk.source.name}/{chunk.split}")
            meta = _do_chunk(chunk, media, out_dir, settings, encode, cfg, skips)
            media = []
            sequences[chunk.source.name][chunk.split] += meta["rows"]
            frames += meta["frames"]
            written.append(f"{chunk.source.name}/{chunk.split}/{chunk.name}")
            bar.set_postfix(frames_per_s=f"{frames / (time.perf_counter() - start):.0f}")
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    index = build_index(out_dir, sources, chunks, settings)
    rate = frames / seconds if seconds > 0 else 0.0
    print(
        f"rank {rank}/{world_size}: {sum(sum(v.values()) for v in sequences.values())} sequences, {frames} frames "
        f"in {seconds:.1f} s ({rate:.1f} frames/s); {len(written)} shards written, {len(mine) - len(todo)} already done"
    )
    skips.print()
    return {
        "rank": rank,
        "world_size": world_size,
        "sequences": sequences,
        "frames": frames,
        "seconds": seconds,
        "frames_per_s": rate,
        "skipped": skips.as_dict(),
        "shards_written": written,
        "shards_resumed": len(mine) - len(todo),
        "complete": index["complete"],
        "index": str(out_dir / INDEX),
    }

