"""One tracking run: for each encoder, every video, every layer: features -> propagation -> J and F.

`run_tracking(TrackConfig)` is what `python -m encoder.track` calls; tests call it directly. Frames
are resized to the encoder's input size (squashed to a square: a 16 x 16 grid at 128 px), each
frame encoded on its own (an image sequence, as in the paper's tracking and probing); the
propagated labels are upsampled back to the annotation size and scored there. One forward per
batch of frames serves every layer.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from encoder.tracking.config import TrackConfig
from toto_robot.media.davis import Video, read_davis
from encoder.tracking.metrics import score_video, summarize
from encoder.tracking.propagate import PropagationSettings, grid_labels, masks_from_labels, propagate
from encoder.tracking.report import plot_layers, write_overlay
from toto_robot.io import atomic_write

RESULTS_NAME, PLOT_NAME, OVERLAY_DIR = "results.json", "jf_vs_layer.png", "overlays"
PIXELS = "pixels"  # an `encoders` entry: the no-learning reference, raw 8 x 8 patches at 128 px


class PixelPatches:
    """The reference a learned encoder should beat: each patch's own RGB values (centred), as a
    one-layer "encoder" on the same 16 x 16 grid the nano reads."""

    kind, n_layers = PIXELS, 1

    def __init__(self, resolution: int = 128, patch: int = 8):
        self.resolution, self.patch, self.grid = resolution, patch, resolution // patch

    def token_features(self, frames: torch.Tensor, layers: list[int]) -> dict[int, torch.Tensor]:
        B, g, p = frames.shape[0], self.grid, self.patch
        x = frames.float().div(255).sub(0.5).reshape(B, g, p, g, p, 3).permute(0, 1, 3, 2, 4, 5)
        return {n: x.reshape(B, g * g, p * p * 3) for n in layers}


def open_tracker(path: str, dtype, device):
    """An encoder directory (Toto or MAE), or `pixels`."""
    from encoder.probes.run import open_encoder  # (lazy: PIL, av, omegaconf, tqdm)

    return PixelPatches() if path == PIXELS else open_encoder(path, dtype, device)


def resize_frames(frames: np.ndarray, size: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) uint8 (bilinear with antialiasing)."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def layer_features(encoder, frames: torch.Tensor, layers: list[int], batch: int) -> dict[int, torch.Tensor]:
    """{layer: (T, N, dim)} per-patch features of each frame, encoded as an image."""
    parts: dict[int, list[torch.Tensor]] = {n: [] for n in layers}
    for start in range(0, len(frames), batch):
        for n, h in encoder.token_features(frames[start:start + batch], layers).items():
            parts[n].append(h.cpu())
    return {n: torch.cat(chunks) for n, chunks in parts.items()}


def track_video(encoder, video: Video, layers: list[int], settings: PropagationSettings, batch: int,
                max_frames: int | None) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """(frames, true masks, {layer: predicted masks}) of one video; frame 0's prediction is its annotation."""
    frames, true = video.load_frames()[:max_frames], video.load_masks()[:max_frames]
    if frames.shape[1:3] != true.shape[1:]:
        raise ValueError(f"video {video.name!r}: frames are {frames.shape[1:3]} but annotations {true.shape[1:]}")
    features = layer_features(encoder, resize_frames(frames, encoder.resolution), layers, batch)
    first = grid_labels(torch.from_numpy(true[0]), video.objects, encoder.grid)
    predictions = {}
    for n, feats in features.items():
        pred = masks_from_labels(propagate(feats, first, settings), video.objects, true.shape[1:]).numpy()
        pred[0] = true[0]
        predictions[n] = pred
    return frames, true, predictions


def load_videos(cfg: TrackConfig, make_sim_set: Callable[..., dict] | None) -> tuple[list[Video], dict]:
    """The videos to track and a description of where they came from."""
    d = cfg.data
    if d.root is not None:
        return read_davis(d.root, d.split, d.year, d.resolution, d.videos), {"root": d.root, "resolution": d.resolution}
    if make_sim_set is None:
        raise ValueError("data.root is null (the embedded sim set) but no sim renderer was given: pass data.root=<DAVIS root>")
    made = make_sim_set(d.cache_dir, episodes_per_task=d.episodes_per_task, seed=d.seed, frames=d.frames,
                        frame_step=d.frame_step, progress=cfg.progress)
    return read_davis(made["root"], resolution=made["resolution"], videos=d.videos), {**made, "embedded": True}


def copy_first_frame(videos: list[Video], cfg: TrackConfig) -> dict:
    """J, F, J&F of a tracker that never moves: the first mask repeated (the floor any encoder should clear)."""
    scores = {}
    for video in videos:
        true = video.load_masks()[:cfg.data.max_frames]  # (also counts the video's unknown indices)
        scores[video.name] = score_video(np.repeat(true[:1], len(true), axis=0), true, video.objects, cfg.boundary_tolerance)
    return summarize(scores)


def check(cfg: TrackConfig) -> None:
    """Fail fast, before the simulator or any encoder runs."""
    if not cfg.encoders:
        raise ValueError("encoders=[]: give at least one encoder directory")
    for path in cfg.encoders:
        if path != PIXELS and not Path(path).expanduser().exists():
            raise FileNotFoundError(f"encoder {path} not found: run `python pretrain/run.py` (or objective=mae) first, "
                                    "or pass encoders=[PATH,...]")
    if cfg.boundary_tolerance < 0 or cfg.overlays < 0 or cfg.batch_frames < 1:
        raise ValueError("boundary_tolerance >= 0, overlays >= 0 and batch_frames >= 1 are needed")
    if cfg.data.max_frames is not None and cfg.data.max_frames < 2:
        raise ValueError(f"data.max_frames={cfg.data.max_frames}: tracking needs at least 2 frames")


def run_tracking(cfg: TrackConfig, make_sim_set: Callable[..., dict] | None = None) -> dict:
    """Track every video with every encoder at every layer; write results.json, the plot and overlays."""
    from tqdm import tqdm

    from encoder.probes.run import resolve_layers  # (lazy: PIL, av, omegaconf, tqdm)

    check(cfg)
    videos, source = load_videos(cfg, make_sim_set)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = cfg.propagation  # checked when the config was built (PropagationSettings.__post_init__)
    results = {"data": {**source, "videos": [v.name for v in videos]}, "propagation": dataclasses.asdict(settings),
               "boundary_tolerance": cfg.boundary_tolerance, "copy_first_frame": copy_first_frame(videos, cfg), "encoders": {}}
    results["data"]["unknown_indices"] = {v.name: {"pixels": v.unknown_pixels, "frames": v.unknown_frames}
                                          for v in videos if v.unknown_pixels}
    for path in cfg.encoders:
        encoder = open_tracker(path, cfg.dtype, cfg.device)
        layers = resolve_layers(cfg.layers, encoder.n_layers)
        per_layer: dict[int, dict] = {n: {} for n in layers}
        for video in tqdm(videos, desc=f"track {path}", unit="video", disable=not cfg.progress):
            _, true, predictions = track_video(encoder, video, layers, settings, cfg.batch_frames, cfg.data.max_frames)
            for n, pred in predictions.items():
                per_layer[n][video.name] = score_video(pred, true, video.objects, cfg.boundary_tolerance)
        by_layer = {str(n): {**summarize(scores), "videos": {v: {str(k): s for k, s in objects.items()}
                                                               for v, objects in scores.items()}}
                    for n, scores in per_layer.items()}
        best = max(layers, key=lambda n: by_layer[str(n)]["JF"])
        results["encoders"][path] = {
            "kind": encoder.kind, "n_layers": encoder.n_layers, "resolution": encoder.resolution,
            "grid": encoder.grid, "layers": by_layer, "best_layer": best, "best_depth": best / encoder.n_layers,
            "best": {k: by_layer[str(best)][k] for k in ("J", "F", "JF")},
        }
        for video in videos[:cfg.overlays]:
            frames, true, predictions = track_video(encoder, video, [best], settings, cfg.batch_frames, cfg.data.max_frames)
            slug = PIXELS if path == PIXELS else f"{Path(path).parent.name}_{Path(path).name}".strip("_")
            name = f"{slug}_layer{best}_{video.name}.mp4"
            write_overlay(out / OVERLAY_DIR / name, frames, true, predictions[best])
        del encoder
    results["plot"] = str(plot_layers(results["encoders"], out / PLOT_NAME, floor=results["copy_first_frame"]["JF"]))
    with atomic_write(out / RESULTS_NAME) as tmp:
        tmp.write_text(json.dumps(results, indent=1))
    return results
