"""One probe run: load the frozen encoder, build the datasets, extract, train every probe, report.

`run_probes(ProbeConfig)` is what `python -m encoder.probe` calls; tests call it directly. Bad
input (paths, layers, probe types, CSV columns) raises ValueError / FileNotFoundError with a
one-line message before anything expensive starts.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

from encoder.probes.config import EMBEDDED_IMAGES, EMBEDDED_VIDEOS, ProbeConfig
from encoder.probes.data import ProbeDataset, csv_video_dataset, digits_dataset, image_folder_dataset, robot_dataset
from encoder.probes.heads import TOKEN_PROBES, check_probes
from encoder.probes.report import plot, summarize
from encoder.probes.store import read_store
from encoder.probes.train import encoder_stamp, extract_features, fingerprint, train_all
from toto_robot.media.clips import ClipSpec
from encoder.frozen import load_encoder, resolve_layer

log = logging.getLogger(__name__)


def open_encoder(path: str, dtype: str | None = "auto", device: str = "auto"):
    """The frozen encoder at `path` on `device` in `dtype` (auto: toto_robot/compute.py); a missing path says how to make one."""
    if not Path(path).expanduser().exists():
        raise FileNotFoundError(f"encoder {path} not found: run `python pretrain/run.py` first or pass encoder=PATH")
    return load_encoder(str(Path(path).expanduser()), dtype=dtype, device=device)


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def resolve_layers(spec, n_layers: int) -> list[int]:
    """Sorted block numbers 1..n_layers: null -> all; items as `encoder.frozen.resolve_layer` takes
    them (a block 1..n, -1 = last, "mid", a fraction of depth in (0, 1])."""
    if spec is None or [str(s) for s in spec] == ["all"]:
        return list(range(1, n_layers + 1))
    if not list(spec):
        raise ValueError("layers=[]: give at least one layer, or null for all")
    return sorted({resolve_layer(_number(str(item).strip()), n_layers) for item in spec})


def check_sources(cfg: ProbeConfig) -> None:
    """Fail fast (before the encoder or the simulator run) on data paths that do not exist."""
    image, video = cfg.image.source, cfg.video.source
    if image is None and video is None:
        raise ValueError("nothing to probe: image.source and video.source are both null")
    if image not in (None, EMBEDDED_IMAGES) and not Path(image).expanduser().is_dir():
        raise FileNotFoundError(f"image.source={image}: not a directory (an ImageFolder root, or 'digits')")
    for key in ("source", "val_csv"):
        value = getattr(cfg.video, key)
        if value not in (None, EMBEDDED_VIDEOS) and not Path(value).expanduser().is_file():
            raise FileNotFoundError(f"video.{key}={value}: no such CSV file (expected path,label columns)")
    if cfg.video.val_csv and video == EMBEDDED_VIDEOS:
        raise ValueError("video.val_csv needs video.source to be a CSV, not the embedded robot videos")


def clip_frames(video) -> int:
    """Frames a clip: `video.frames`, else 8 for the embedded robot clips and 16 (paper) for a CSV."""
    return video.frames or (8 if video.source == EMBEDDED_VIDEOS else 16)


def load_datasets(cfg: ProbeConfig, resolution: int, render_robot_videos=None) -> list[ProbeDataset]:
    datasets = []
    image, video = cfg.image, cfg.video
    if image.source == EMBEDDED_IMAGES:
        datasets.append(digits_dataset(resolution, image.val_fraction, cfg.seed, image.limit))
    elif image.source is not None:
        datasets.append(image_folder_dataset(image.source, resolution, image.val_fraction, cfg.seed, image.limit))
    if video.source == EMBEDDED_VIDEOS:
        spec = ClipSpec(clip_frames(video), video.stride, resolution)
        if render_robot_videos is None:
            raise ValueError("video.source=robot renders sim episodes: run python -m encoder.probe, or pass "
                             "render_robot_videos=pretrain.data.embedded.record_robot_videos to run_probes")
        datasets.append(robot_dataset(video.cache_dir, spec, render_robot_videos, video.episodes_per_task, video.robot_seed,
                                      video.val_fraction, video.train_clips or 2, cfg.progress))
    elif video.source is not None:
        spec = ClipSpec(clip_frames(video), video.stride, resolution)
        datasets.append(csv_video_dataset(video.source, spec, video.val_csv, video.root, video.val_fraction, cfg.seed,
                                          video.train_clips or 1, video.limit))
    return datasets


def dataset_features(cfg: ProbeConfig, encoder, dataset: ProbeDataset, layers: list[int], out: Path) -> tuple:
    """(train, val) Features, streamed to <out>/features/<name>_<split>/ and memory-mapped from there
    (reused as they are by a rerun with the same encoder, data and settings when cache_features)."""
    want_tokens = any(p in TOKEN_PROBES for p in cfg.probes)
    result = []
    for split_name, split in (("train", dataset.train), ("val", dataset.val)):
        key = fingerprint(encoder=encoder_stamp(cfg.encoder), dtype=cfg.dtype, name=dataset.name, info=dataset.info,
                          split=split_name, items=[str(i) for i in split.items], layers=layers, tokens=want_tokens,
                          token_grid=cfg.token_grid, token_frames=cfg.token_frames, seed=cfg.seed,
                          resolution=encoder.resolution)
        path = out / "features" / f"{dataset.name}_{split_name}"
        features = read_store(path, key) if cfg.cache_features else None
        if features is not None:
            log.info(f"{dataset.name}/{split_name}: features from {path}")
        else:
            features = extract_features(
                encoder, split, layers, dataset.frames, want_tokens=want_tokens, token_grid=cfg.token_grid,
                token_frames=cfg.token_frames, batch_frames=cfg.batch_frames, seed=cfg.seed, workers=cfg.workers,
                device=encoder.compute.device, desc=f"{dataset.name}/{split_name}", progress=cfg.progress, store=path, key=key)
            log.info(f"{dataset.name}/{split_name}: {len(features.labels)} samples encoded in {features.seconds:.1f}s"
                     + (f", skipped {features.skipped.as_dict()}" if features.skipped.total else ""))
        result.append(features)
    return tuple(result)


def run_probes(cfg: ProbeConfig, render_robot_videos=None) -> dict:
    """Probe every requested layer with every probe type; write results.json and the plot to cfg.out."""
    start = time.perf_counter()
    probes = check_probes(cfg.probes)
    check_sources(cfg)
    if cfg.token_grid is not None and cfg.token_grid < 1 or cfg.token_frames is not None and cfg.token_frames < 1:
        raise ValueError(f"token_grid={cfg.token_grid}, token_frames={cfg.token_frames}: must be >= 1 or null")
    encoder = open_encoder(cfg.encoder, cfg.dtype, cfg.device)
    encoder.compute.announce("probe encoder")
    layers = resolve_layers(cfg.layers, encoder.n_layers)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log.info(f"encoder {cfg.encoder}: {encoder.n_layers} layers, dim {encoder.dim}, {encoder.resolution}px; "
             f"probing layers {layers} with {', '.join(probes)}")
    if cfg.video.source is not None and clip_frames(cfg.video) > encoder.frames:
        raise ValueError(f"video clips of {clip_frames(cfg.video)} frames, but the encoder reads at most "
                         f"{encoder.frames}; pass video.frames={encoder.frames} or fewer")
    summaries = {}
    for dataset in load_datasets(cfg, encoder.resolution, render_robot_videos):
        log.info(f"{dataset.name}: {len(dataset.classes)} classes, {len(dataset.train)} train / {len(dataset.val)} val samples")
        train, val = dataset_features(cfg, encoder, dataset, layers, out)
        results = train_all(train, val, layers, probes, len(dataset.classes), cfg.train, cfg.seed, cfg.progress,
                            desc=f"{dataset.name} probes", device=encoder.compute.device)
        summaries[dataset.name] = summary = summarize(dataset, train, val, results, layers, encoder.n_layers, cfg.best_by)
        for probe, by_layer in summary["accuracy"].items():
            log.info(f"{dataset.name} {probe:>13}: " + "  ".join(f"L{k} {100 * v:5.1f}%" for k, v in by_layer.items()))
        pooling = summary["pooling_at_best_layer"]
        log.info(f"{dataset.name}: chance {100 * summary['chance']:.1f}%, best layer {summary['best_layer']} "
                 f"({100 * summary['best_layer_fraction']:.0f}% depth, {summary['best_by']})"
                 + (f"; avg {100 * pooling['average']:.1f}% vs attention {100 * pooling['attention']:.1f}%" if pooling else ""))
    report = {
        "encoder": str(cfg.encoder),
        "n_layers": encoder.n_layers,
        "dim": encoder.dim,
        "resolution": encoder.resolution,
        "layers": layers,
        "probes": probes,
        "train": dataclasses.asdict(cfg.train),
        "token_grid": cfg.token_grid,
        "token_frames": cfg.token_frames,
        "seed": cfg.seed,
        "datasets": summaries,
        "runtime_seconds": round(time.perf_counter() - start, 1),
    }
    (out / "results.json").write_text(json.dumps(report, indent=1, default=list))
    plot(summaries, encoder.n_layers, out / "accuracy_vs_layer.png")
    log.info(f"wrote {out / 'results.json'} and {out / 'accuracy_vs_layer.png'} ({report['runtime_seconds']:.0f}s)")
    return report


__all__ = ["load_datasets", "open_encoder", "resolve_layers", "run_probes"]
