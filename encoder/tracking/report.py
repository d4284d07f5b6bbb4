"""What a tracking run shows: J&F against depth per encoder (the tracking panel of Fig. 8), and
overlay videos of the propagated masks next to the ground truth."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from toto_robot.media.davis import palette
from toto_robot.io import save_figure


def plot_layers(encoders: dict, path: Path, floor: float | None = None) -> Path:
    """jf_vs_layer.png: J&F (solid), J and F (faint) against layer / depth, one colour per encoder;
    `floor`: the J&F of repeating the first mask, grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (name, result) in enumerate(encoders.items()):
        layers = sorted(int(k) for k in result["layers"])
        depth = [k / result["n_layers"] for k in layers]
        for metric, style, alpha in (("JF", "o-", 1.0), ("J", "--", 0.4), ("F", ":", 0.4)):
            ax.plot(depth, [100 * result["layers"][str(k)][metric] for k in layers], style, color=f"C{i}", alpha=alpha,
                    ms=4, label=f"{name} ({result['kind']}, {result['n_layers']} blocks)" if metric == "JF" else None)
        ax.axvline(result["best_layer"] / result["n_layers"], color=f"C{i}", lw=0.8, ls=":")
    if floor is not None:
        ax.axhline(100 * floor, color="0.5", lw=1, ls="--", label="first mask repeated (no tracking)")
    ax.set(xlabel="layer / depth", ylabel="score (%)  J&F solid, J dashed, F dotted", xlim=(0, 1.05),
           title="label propagation: J&F by layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def overlay(frames: np.ndarray, masks: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Frames (T, H, W, 3) with each object's palette colour blended over its pixels."""
    colours = palette()[masks].astype(np.float32)
    blended = np.where(masks[..., None] > 0, (1 - alpha) * frames + alpha * colours, frames)
    return blended.astype(np.uint8)


def write_overlay(path: Path, frames: np.ndarray, true: np.ndarray, pred: np.ndarray, fps: float = 10.0) -> Path:
    """An MP4: ground truth on the left, the propagated masks on the right."""
    from toto_robot.video_writer import write_mp4  # (lazy: av)

    gap = np.full((*frames.shape[:2], 4, 3), 255, dtype=np.uint8)
    side_by_side = np.concatenate([overlay(frames, true), gap, overlay(frames, pred)], axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, list(side_by_side), fps=fps)
    return path
