"""The tokenizer's stability report: held-out raw renders of every task and camera, the corpus's
storage round trip, and reconstruction PSNR per source (encoder/tokenizers/stability.py measures).

The tokenizer stage records it in tokenizer.json and metrics.json and prints it; the main job's
REPORT.md shows it; `python benchmarks/token_stability.py` prints it for any tokenizer or export.
Episodes are seeded 7001 (pre-training renders 0.., probes 1000.., tracking 5000..), so none of
their frames was seen in training.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

from encoder.tokenizers import stability
from encoder.feature_stability import code_neighbour_cosine, position_readout, self_match, video_features
from encoder.frozen import load_encoder
from encoder.tokens import CODE_OFFSET
from pretrain.data.sources import list_media, split_files
from sim.tasks import CAMERAS, TASKS

SEED, STEPS = 7001, 60  # one held-out expert episode per task, its first 60 control steps (all of it when shorter: 44-60)
PSNR_FRAMES = 64  # held-out frames per source for the PSNR
# what the report is held to (issue 24): a still patch keeps its code; storage changes no code
TARGETS = {"static_flip": 0.05, "wrist_static_flip": 0.10, "stored_agreement": 0.95}


@functools.lru_cache(maxsize=2)
def held_out_videos(image_size: int = 128) -> dict[str, np.ndarray]:
    """{"<task>/<camera>": (STEPS, H, W, 3)} raw renders, no codec in between (rendered once a process)."""
    from sim.rollouts import expert_videos  # (lazy: gymnasium)

    return expert_videos(list(TASKS), SEED, STEPS, CAMERAS, image_size)


def stored_versions(videos: dict[str, np.ndarray], lossless: bool, fps: float = 20.0) -> dict[str, np.ndarray]:
    """The same videos after the corpus's storage: written as MP4 (lossless or yuv420p), decoded back."""
    from toto_robot.media.video import read_frames  # (lazy: PIL, av)
    from toto_robot.video_writer import write_mp4  # (lazy: av)

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, frames) in enumerate(videos.items()):
            path = Path(tmp) / f"{i}.mp4"
            write_mp4(path, list(frames), fps=fps, lossless=lossless)
            out[name] = read_frames(path)[:len(frames)]
    return out


def source_frames(sources, resolution: int, val_fraction: float, count: int = PSNR_FRAMES, seed: int = 0) -> dict:
    """{source name: (count, R, R, 3)} frames from each source's held-out files (its train files if it has none)."""
    from pretrain.data.embedded import sample_frames  # (lazy: PIL, av)

    rng = np.random.default_rng(seed)
    out = {}
    for source in sources:
        groups = split_files(list_media(source), source, val_fraction)
        files = groups["val"] or groups["train"]
        if files:
            out[source.name] = sample_frames(source, files, count, rng, resolution)
    return out


def codes_of(path):
    """The tokenizer whose codes `path` stands for: a tokenizer folder, an export's own tokenizer, or, for an
    export that reads patches (objective=patch_dvae, the default), the tokenizer of its targets beside it in the
    run (`<out>/tokenizer` next to `<out>/encoder`)."""
    from encoder.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(path)
    targets = Path(path).parent / "tokenizer"
    if tokenizer.kind == "patch" and (Path(path) / "toto.json").is_file() and (targets / "tokenizer.json").is_file():
        return load_tokenizer(targets)
    return tokenizer


def measure(tokenizer, frames_by_source: dict[str, np.ndarray] | None = None, lossless: bool | None = True,
            image_size: int = 128) -> dict:
    """Stability on held-out renders, agreement with their stored version (lossless or yuv420p
    MP4; None: the corpus is the user's, stored as it is, and no round trip is measured), PSNR per source."""
    videos = held_out_videos(image_size)
    stored = None if lossless is None else stored_versions(videos, lossless)
    result = stability.measure(tokenizer, videos, stored)
    wrist = [v["static_flip"] for name, v in result["videos"].items() if name.endswith("/wrist") and v["static_flip"] is not None]
    result["wrist_static_flip"] = max(wrist) if wrist else None
    result["storage"] = {None: "not measured", True: "lossless", False: "yuv420p"}[lossless]
    result["episodes"] = {"seed": SEED, "steps": STEPS}
    if tokenizer.kind != "patch":
        result["psnr_db"] = {name: stability.psnr(tokenizer, frames) for name, frames in (frames_by_source or {}).items()}
    return result


def meets_targets(result: dict) -> dict[str, bool]:
    """{figure: within its target} for the figures TARGETS holds the tokenizer to."""
    out = {}
    for key, bound in TARGETS.items():
        value = result.get(key)
        out[key] = value is not None and (value >= bound if key == "stored_agreement" else value <= bound)
    return out


def summary_lines(result: dict) -> list[str]:
    """The report as lines for the terminal and REPORT.md."""
    def pct(value):
        return "n/a" if value is None else f"{value:.1%}"

    ok = meets_targets(result)
    mark = {True: "ok", False: "MISSED"}
    lines = [
        f"static-patch flips {pct(result['static_flip'])} (target <= {TARGETS['static_flip']:.0%}: {mark[ok['static_flip']]}), "
        f"worst wrist view {pct(result['wrist_static_flip'])} (target <= {TARGETS['wrist_static_flip']:.0%}: "
        f"{mark[ok['wrist_static_flip']]}), still context {pct(result['static_context_flip'])}",
        f"all patches: flips {pct(result['flip_stride1'])} at stride 1, {pct(result['flip_stride4'])} at stride 4",
        f"raw vs stored ({result['storage']}) code agreement {pct(result['stored_agreement'])} "
        f"(target >= {TARGETS['stored_agreement']:.0%}: {mark[ok['stored_agreement']]})",
        "static flips per video: " + ", ".join(f"{name} {pct(v['static_flip'])}" for name, v in result["videos"].items()),
    ]
    cube = result.get("cube")
    if cube:
        small = [v["colour_error"] for v in cube["per_view"] if v["pixels"] < MIN_CUBE_PIXELS]
        lines.append(f"cube colour inside the cube through encode/decode: off by {cube['colour_error']}/255 on the worst "
                     f"wrist view (tolerance {cube['tolerance']:.0f}: {'kept' if cube['kept'] else 'LOST'})"
                     + (f"; {max(small):.0f}/255 where it covers under two patches" if small else ""))
    if result.get("psnr_db"):
        lines.append("PSNR per source: " + ", ".join(f"{name} {db:.1f} dB" for name, db in result["psnr_db"].items()))
    return lines


CUBE_TASKS = ("franka_pick", "kuka_pick")
CROP = 32  # pixels a side of the crop around the cube (at 128 px), drawn 4x in reconstructions.png
ERODE = 2  # pixels taken off the cube's outline: its colour is asked of the inside, blur at the edges aside
MIN_CUBE_PIXELS = 128  # views where the cube covers two 8 x 8 patches or more (the wrist views) are held to the tolerance
# max |mean RGB error| (0-255) inside the cube that counts as keeping its colour: the 3x3-conv,
# entropy-bonus tokenizer was off by 49-62 on the wrist views, the default by 9-18 (docs/results.md)
CUBE_COLOUR_TOLERANCE = 24.0


def cube_views(image_size: int = 128) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(frame, cube mask)] of the held-out pick episodes' first frames, both cameras (MuJoCo's segmentation)."""
    from sim.env import TotoTaskEnv  # (lazy: gymnasium, mujoco)
    from sim.experts import make_expert  # (lazy: gymnasium, mujoco)
    from sim.rollouts import episode_views  # (lazy: gymnasium)
    from sim.segmentation import TASK_OBJECT, geom_labels  # (lazy: gymnasium)

    out = []
    for task in CUBE_TASKS:
        env = TotoTaskEnv(task, image_size=image_size, obs_mode="state")
        try:
            labels = geom_labels(env)
            views = episode_views(env, make_expert(task, env.config), SEED, 1, 1, list(CAMERAS), segmentation=True)
        finally:
            env.close()
        out += [(frames[0], labels[geoms[0]] == TASK_OBJECT) for frames, geoms in views.values()]
    return [(frame, mask) for frame, mask in out if mask.any()]


def _crop_box(mask: np.ndarray, size: int) -> tuple[int, int]:
    ys, xs = np.nonzero(mask)
    cy, cx = int(ys.mean()), int(xs.mean())
    h, w = mask.shape
    return min(max(cy - size // 2, 0), h - size), min(max(cx - size // 2, 0), w - size)


def _inside(mask: np.ndarray, erode: int = ERODE) -> np.ndarray:
    """The mask less `erode` pixels of its outline (the mask itself if nothing would be left)."""
    import torch
    import torch.nn.functional as F

    k = 2 * erode + 1
    inner = (-F.max_pool2d(-torch.from_numpy(mask).float()[None, None], k, 1, erode))[0, 0].numpy() > 0.5
    return inner if inner.any() else mask


def cube_check(tokenizer, image_size: int = 128) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """Does the cube keep its colour through encode -> decode? Per view, the max channel error of
    the mean RGB inside the cube; views with a cube of MIN_CUBE_PIXELS or more are held to the
    tolerance. Returns (figures, (original crops, reconstructed crops), 4x enlarged)."""
    import torch

    views = cube_views(image_size)
    frames = torch.from_numpy(np.stack([frame for frame, _ in views]))
    recons = tokenizer.decode(tokenizer.encode(frames)).numpy()
    per_view, originals, rebuilt = [], [], []
    for (frame, mask), recon in zip(views, recons):
        inside = _inside(mask)
        error = float(np.abs(frame[inside].astype(float).mean(0) - recon[inside].astype(float).mean(0)).max())
        per_view.append({"pixels": int(mask.sum()), "colour_error": round(error, 1)})
        y, x = _crop_box(mask, CROP)
        for image, into in ((frame, originals), (recon, rebuilt)):
            into.append(np.kron(image[y:y + CROP, x:x + CROP], np.ones((4, 4, 1), dtype=np.uint8)))
    held = [v["colour_error"] for v in per_view if v["pixels"] >= MIN_CUBE_PIXELS]
    worst = max(held) if held else None
    figures = {"colour_error": worst, "per_view": per_view, "tolerance": CUBE_COLOUR_TOLERANCE,
               "kept": worst is not None and worst <= CUBE_COLOUR_TOLERANCE}
    return figures, (np.stack(originals), np.stack(rebuilt))


FEATURE_REPORT = "feature_stability.json"  # beside the export's weights


def feature_report(encoder_dir, device: str = "auto", dtype: str = "fp32") -> dict:
    """The export's features on the held-out renders: nearest-neighbour self-match between consecutive
    frames and the linear read-out of a patch's place, at every layer (raw pixel patches beside them), and,
    for an FSQ Toto, the embedding cosine of codes one level apart."""
    from encoder.tracking.run import PixelPatches  # (lazy: hydra)

    # fp32 by default whatever the device, so figures compare across machines; the run's device (a GPU at scale)
    encoder = load_encoder(str(encoder_dir), layer=-1, pool="avg", dtype=dtype, device=device)
    layers = list(range(1, encoder.model.config.n_layers + 1))
    videos = held_out_videos(encoder.resolution)
    features, pixels = video_features(encoder, videos, layers), video_features(PixelPatches(encoder.resolution), videos, [1])
    # raw 8x8 pixel patches on the same frames: flat-shaded renders have many identical patches, whose nearest
    # neighbour is any of them, and content alone tells some places (floors low); Toto's features (RoPE, no
    # absolute position) inherit those ties
    report = {"self_match": self_match(features), "kind": encoder.kind, "self_match_pixels": self_match(pixels)[1],
              "position_readout": position_readout(features), "position_readout_pixels": position_readout(pixels)[1],
              "position_chance": 1 / features[0][layers[0]].shape[1]}
    tokenizer = encoder.tokenizer
    if getattr(tokenizer, "kind", "") == "fsq" and getattr(encoder.model.config, "patch_dim", None) is None:
        weight = encoder.model.tok_embeddings.weight.detach().float()
        report["code_neighbour_cosine"] = code_neighbour_cosine(weight, tokenizer.cfg.levels, CODE_OFFSET)
    return report


def feature_lines(report: dict) -> list[str]:
    matches = ", ".join(f"layer {n} {v:.1%}" for n, v in report["self_match"].items())
    pixels = report.get("self_match_pixels")
    lines = [f"nearest-neighbour self-match between consecutive held-out frames: {matches}"
             + (f" (raw pixel patches: {pixels:.1%})" if pixels is not None else "")]
    position = report.get("position_readout")
    if position:
        places = ", ".join(f"layer {n} {v:.1%}" for n, v in position.items())
        pixels = report.get("position_readout_pixels")
        lines.append(f"a patch's place read linearly from its feature: {places} (chance {report['position_chance']:.1%}"
                     + (f", raw pixel patches {pixels:.1%})" if pixels is not None else ")"))
    cosine = report.get("code_neighbour_cosine")
    if cosine:
        lines.append(f"code embedding cosine, one FSQ level apart {cosine['one_level']:.3f} (random pairs {cosine['random']:.3f})")
    return lines
