"""Label propagation through per-patch features (Jabri et al. 2020, "STC"; the paper's section 4.5).

The first frame's mask, as soft labels on the feature grid, is carried forward frame by frame.
Each patch of frame t takes the labels of its `topk` most similar patches among the context
frames (the first frame, whose labels are given, and the last `context_frames` frames, with their
propagated labels), weighted by a softmax of cosine similarity / `temperature`, looking only at
patches within `radius` grid cells of its own position. The defaults are STC's DAVIS settings
(--topk 10 --videoLen 20 --radius 12 --temperature 0.05). The radius is in feature cells: STC's
12 cells of a 1/8-resolution 480p map; on a 16 x 16 grid it leaves most of the frame in reach.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PropagationSettings:
    topk: int = 10
    context_frames: int = 20  # STC's videoLen: the most recent frames whose propagated labels are used
    radius: float = 12.0  # grid cells; <= 0: no spatial limit
    temperature: float = 0.05
    keep_first: bool = True  # the first frame (ground truth) stays in every frame's context

    def __post_init__(self):
        if self.topk < 1 or self.context_frames < 0 or self.temperature <= 0:
            raise ValueError(f"propagation: topk >= 1, context_frames >= 0 and temperature > 0 needed; got {self}")
        if self.context_frames == 0 and not self.keep_first:
            raise ValueError("propagation: with context_frames=0 keep_first must be true (no context otherwise)")


def grid_labels(mask: torch.Tensor, objects: list[int], grid: int) -> torch.Tensor:
    """(H, W) object indices -> (grid*grid, 1 + K) soft labels: each cell's share of background and each object."""
    ids = torch.as_tensor([0, *objects], device=mask.device)
    one_hot = (mask[None] == ids[:, None, None]).float()  # (1+K, H, W)
    return F.adaptive_avg_pool2d(one_hot[None], grid)[0].flatten(1).T


def _neighbourhood(grid: int, radius: float, device) -> torch.Tensor | None:
    """(N, N) bool: key cell within `radius` of query cell (None: no limit)."""
    if radius <= 0:
        return None
    ys, xs = torch.meshgrid(torch.arange(grid, device=device), torch.arange(grid, device=device), indexing="ij")
    cells = torch.stack([ys.flatten(), xs.flatten()], 1).float()
    return torch.cdist(cells, cells) <= radius


@torch.no_grad()
def propagate(features: torch.Tensor, first: torch.Tensor, settings: PropagationSettings) -> torch.Tensor:
    """features (T, N, C) of N = g*g patches a frame, first-frame labels (N, L) -> labels (T, N, L)
    (frame 0's are `first`). Rows of the result sum to 1."""
    T, N, _ = features.shape
    grid = int(round(N**0.5))
    if grid * grid != N or first.shape[0] != N:
        raise ValueError(f"features of {N} patches a frame need a square grid and first-frame labels for each ({first.shape[0]})")
    feats = F.normalize(features.float(), dim=-1)
    near = _neighbourhood(grid, settings.radius, feats.device)
    labels = [first.float()]
    for t in range(1, T):
        recent = list(range(max(1 if settings.keep_first else 0, t - settings.context_frames), t))
        context = ([0] if settings.keep_first else []) + recent
        keys = feats[context]  # (M, N, C)
        similarity = torch.einsum("qc,mkc->qmk", feats[t], keys) / settings.temperature  # (N, M, N)
        if near is not None:
            similarity = similarity.masked_fill(~near[:, None, :], float("-inf"))
        similarity = similarity.reshape(N, -1)
        k = min(settings.topk, similarity.shape[1])
        values, index = similarity.topk(k, dim=1)
        weights = torch.softmax(values, dim=1)  # (N, k); masked cells are never among the top k unless k > reachable
        weights = torch.nan_to_num(weights * torch.isfinite(values), nan=0.0)
        context_labels = torch.stack([labels[c] for c in context]).reshape(-1, first.shape[1])  # (M*N, L)
        new = torch.einsum("qk,qkl->ql", weights, context_labels[index])
        labels.append(new / new.sum(1, keepdim=True).clamp_min(1e-12))
    return torch.stack(labels)


def masks_from_labels(labels: torch.Tensor, objects: list[int], size: tuple[int, int]) -> torch.Tensor:
    """Labels (T, g*g, 1 + K) -> (T, H, W) uint8 object indices: bilinear upsampling, then the most likely label."""
    T, N, L = labels.shape
    grid = int(round(N**0.5))
    maps = labels.transpose(1, 2).reshape(T, L, grid, grid)
    up = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    ids = torch.as_tensor([0, *objects], dtype=torch.uint8, device=labels.device)
    return ids[up.argmax(1)]
