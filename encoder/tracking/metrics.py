"""DAVIS's J (region similarity) and F (boundary accuracy), our own implementation of their definitions.

J: intersection over union of the predicted and true masks of one object (1 when both are empty).
F: F-measure of the boundary pixels. A boundary pixel counts as matched when the other mask's boundary
lies within a tolerance: `bound_th` pixels if >= 1, else bound_th x the image diagonal, rounded up
(DAVIS's 0.008: 8 px at 480p, 2 px at 128 px). Precision over the predicted boundary, recall over
the true one; an empty boundary on one side only gives F = 0, on both F = 1.
A boundary pixel is one that differs from its right, lower or lower-right neighbour (DAVIS's seg2bmap
at equal sizes): transitions are marked on their left/upper side.

Over a video: each object's J and F are averaged over the scored frames (all but the first, given,
and the last, as the davis2017-evaluation toolkit does), then over objects of all videos; J&F is
the mean of the two.
"""
from __future__ import annotations

import math

import numpy as np


def region_j(pred: np.ndarray, true: np.ndarray) -> float:
    pred, true = pred.astype(bool), true.astype(bool)
    union = np.logical_or(pred, true).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, true).sum() / union)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose right, lower or lower-right neighbour differs (see the module docstring)."""
    m = mask.astype(bool)
    right, down, diag = np.zeros_like(m), np.zeros_like(m), np.zeros_like(m)
    right[:, :-1], down[:-1, :], diag[:-1, :-1] = m[:, 1:], m[1:, :], m[1:, 1:]
    edges = (m ^ right) | (m ^ down) | (m ^ diag)
    edges[-1, :] = m[-1, :] ^ right[-1, :]  # last row: only the right neighbour exists
    edges[:, -1] = m[:, -1] ^ down[:, -1]  # last column: only the one below
    edges[-1, -1] = False
    return edges


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2


def tolerance_pixels(shape: tuple[int, int], bound_th: float) -> int:
    return int(bound_th) if bound_th >= 1 else math.ceil(bound_th * math.hypot(*shape))


def boundary_f(pred: np.ndarray, true: np.ndarray, bound_th: float = 0.008) -> float:
    from scipy.ndimage import binary_dilation

    radius = tolerance_pixels(true.shape, bound_th)
    pb, tb = boundary_map(pred), boundary_map(true)
    n_pred, n_true = int(pb.sum()), int(tb.sum())
    if n_pred == 0 and n_true == 0:
        return 1.0
    if n_pred == 0 or n_true == 0:
        return 0.0
    disk = _disk(radius)
    precision = (pb & binary_dilation(tb, disk)).sum() / n_pred
    recall = (tb & binary_dilation(pb, disk)).sum() / n_true
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def score_video(pred: np.ndarray, true: np.ndarray, objects: list[int], bound_th: float = 0.008) -> dict[int, dict]:
    """{object: {"J", "F"}}: means over the scored frames 1..T-2 (all but the first and last; with
    fewer than 3 frames, every frame after the first) of masks (T, H, W) of object indices."""
    if pred.shape != true.shape:
        raise ValueError(f"predicted masks {pred.shape} and annotations {true.shape} differ in shape")
    frames = range(1, len(true) - 1) if len(true) >= 3 else range(1, len(true))
    scores = {}
    for k in objects:
        js = [region_j(pred[t] == k, true[t] == k) for t in frames]
        fs = [boundary_f(pred[t] == k, true[t] == k, bound_th) for t in frames]
        scores[k] = {"J": float(np.mean(js)) if js else float("nan"), "F": float(np.mean(fs)) if fs else float("nan")}
    return scores


def summarize(per_video: dict[str, dict[int, dict]]) -> dict:
    """{"J", "F", "JF", "objects"}: means over every object of every video (DAVIS's J-Mean, F-Mean, J&F-Mean)."""
    objects = [s for video in per_video.values() for s in video.values()]
    j = float(np.mean([s["J"] for s in objects])) if objects else float("nan")
    f = float(np.mean([s["F"] for s in objects])) if objects else float("nan")
    return {"J": j, "F": f, "JF": (j + f) / 2, "objects": len(objects)}
