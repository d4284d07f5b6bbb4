"""Data pipeline at scale on generated media: listing, decoding of long videos, tokenization rate.

Why: on ImageNet/Kinetics/HowTo100M-sized sources, three costs decide whether the GPUs wait on
data. This prints, side by side in one run:
1. listing: seconds per 100k files for `list_media` (os.walk, symlinks followed) and, for
   reference, the `Path.rglob` walk it replaced;
2. decoding long videos: 4 random clips (16 frames, stride 4) of a 5-minute 30 fps video,
   read in one pass from the first clip to the last (the old reader) against a seek per clip
   (`read_clips`), for two key-frame intervals. "per kept" divides the frames the codec decoded
   by the 64 frames kept; "per span" by the 244 frames the clips span (61 each: a stride-4 clip
   of inter-coded video must decode every frame between its first and last, so per kept cannot
   go below 3.8 and per span not below 1.0);
3. tokenization: frames/s of `tokenize_sources` (FSQ at 128 px, fp32, on the CPU) on generated
   videos with 0 decode workers (the CPU default), 1, and the count a GPU tokenizer would get.

    python benchmarks/data_pipeline.py                     # ~2-3 min on 2 cores
    python benchmarks/data_pipeline.py --files 100000 --videos 16
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from fractions import Fraction  # noqa: E402
from pathlib import Path  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402

from toto_robot.media.clips import ClipSpec, clip_indices  # noqa: E402
from pretrain.data.sources import SourceConfig, list_media  # noqa: E402
from toto_robot.media.video import probe_video, read_clips, read_frames  # noqa: E402
from pretrain.media_loader import default_workers  # noqa: E402


def make_tree(root: Path, files: int, per_folder: int = 100) -> None:
    for i in range(files):
        folder = root / f"n{i // per_folder:05d}"
        if i % per_folder == 0:
            folder.mkdir(parents=True)
        (folder / f"{i:07d}.jpg").touch()


def listing(root: Path, files: int) -> dict:
    source = SourceConfig("bench", str(root), "image", 1.0)
    start = time.perf_counter()
    listed = list_media(source)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    old = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix == ".jpg")
    rglob = time.perf_counter() - start
    assert len(listed) == len(old) == files
    return {"list_media": ours * 100_000 / files, "rglob": rglob * 100_000 / files}


def write_long_video(path: Path, seconds: int, fps: int, gop: int, size: int = 160) -> None:
    """A moving gradient (so inter frames are cheap but real), libx264 at a fixed key-frame interval."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = size, size * 3 // 4, "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "ultrafast"}
        base = np.linspace(0, 255, stream.width, dtype=np.float32)[None, :, None]
        for i in range(seconds * fps):
            frame = np.broadcast_to((base + 3 * i) % 256, (stream.height, stream.width, 3)).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())


def decoding(path: Path, clips: int = 4, seed: int = 0) -> dict:
    spec = ClipSpec(16, 4, 128)
    n = probe_video(path).frames
    rng = np.random.default_rng(seed)
    wanted = [clip_indices(n, spec, rng) for _ in range(clips)]
    kept, span = clips * spec.frames, clips * ((spec.frames - 1) * spec.stride + 1)
    out = {}
    for name, read in (("one pass", lambda s: read_frames(path, np.concatenate(wanted), short_side=128, stats=s)),
                       ("seek per clip", lambda s: read_clips(path, wanted, short_side=128, stats=s))):
        stats = {}
        start = time.perf_counter()
        read(stats)
        out[name] = (stats["decoded"] / kept, stats["decoded"] / span, time.perf_counter() - start)
    return out


def tokenization(root: Path, videos: int) -> dict:
    from encoder.tokenizers.fsq import FSQConfig, FSQTokenizer
    from pretrain.tokenization import TokenizeConfig, tokenize_sources

    for i in range(videos):
        write_long_video(root / "videos" / f"v{i:03d}.mp4", seconds=20, fps=30, gop=30, size=320)
    source = [SourceConfig("gen", str(root / "videos"), "video", 1.0)]
    tokenizer = FSQTokenizer(FSQConfig())
    rates = {}
    for workers in sorted({0, 1, default_workers("cuda")}):  # CPU default 0; with a GPU tokenizer the cores less one
        cfg = TokenizeConfig(files_per_shard=8, val_fraction=0.0, progress=False, decode_workers=workers)
        stats = tokenize_sources(source, tokenizer, root / f"tokens_{workers}", cfg, rank=0, world_size=1, device="cpu")
        rates[workers] = stats["frames_per_s"]
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=100_000, help="files in the generated tree for the listing figure")
    parser.add_argument("--videos", type=int, default=8, help="20 s 320x240 videos for the tokenization figure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_tree(tmp / "tree", args.files)
        lists = listing(tmp / "tree", args.files)
        print(f"listing {args.files:,} files (100 a folder): list_media {lists['list_media']:.2f} s per 100k, "
              f"Path.rglob {lists['rglob']:.2f} s per 100k")
        print("\ndecoding 4 clips (16 frames, stride 4) of a 5-minute 30 fps 160x120 video:")
        print("| key frame every | reader | decoded per kept | decoded per span | seconds |\n|---|---|---|---|---|")
        for gop in (30, 250):
            path = tmp / f"long_g{gop}.mp4"
            write_long_video(path, seconds=300, fps=30, gop=gop)
            for name, (per_kept, per_span, seconds) in decoding(path).items():
                print(f"| {gop} | {name} | {per_kept:.1f} | {per_span:.2f} | {seconds:.2f} |")
        rates = tokenization(tmp / "tok", args.videos)
        print("\ntokenization (FSQ 128 px, fp32, 4 clips of 16 frames from each 20 s 320x240 video): "
              + ", ".join(f"{workers} decode workers {rate:.0f} frames/s" for workers, rate in rates.items()))


if __name__ == "__main__":
    main()
