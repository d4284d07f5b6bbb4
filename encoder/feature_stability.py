"""Does the frozen encoder see a still scene as still? Two figures an export reports (issue 24):

- `self_match`: for each patch of frame t, is its nearest neighbour (cosine) among frame t+1's
  patches the patch at the same place? Averaged over patches and frame pairs, per layer. An
  encoder whose features follow the image keeps this near 1 when little moves (MAE: 96-97% on the
  held-out renders; the first Toto nano: 64-66%). Read it next to raw pixel patches on the same
  frames (40% on the sim renders): identical flat-shaded patches tie, and features with absolute
  position (MAE's sin-cos embedding) break the ties where Toto's (RoPE only) cannot.
- `position_readout`: how well a linear read-out tells a patch's place in the grid from its feature
  alone (chance: one over the patches). Average and attention pooling sum the patches, so a policy
  reading them learns where the cube is only from what each feature carries of its own place; a
  grid pool keeps the layout whatever the features carry.
- `code_neighbour_cosine`: the cosine between the embeddings of FSQ codes one level apart in one
  digit, against random pairs. If a one-level flip (most flips of a still patch) lands on an
  unrelated vector, the transformer cannot tell a flip from a new object.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from encoder.tokenizers.fsq import FSQ


@torch.no_grad()
def video_features(encoder, videos: dict[str, np.ndarray], layers: list[int], batch: int = 32) -> list[dict[int, torch.Tensor]]:
    """Each video's token features, {layer: (T, N, dim) float32 on the CPU}: one encoder pass serves every
    measure below, each frame encoded as an image."""
    out = []
    for frames in videos.values():
        x = torch.from_numpy(np.ascontiguousarray(frames))
        feats = {n: [] for n in layers}
        for start in range(0, len(x), batch):
            for n, h in encoder.token_features(x[start:start + batch], layers).items():
                feats[n].append(h.float().cpu())
        out.append({n: torch.cat(feats[n]) for n in layers})
    return out


def self_match(features: list[dict[int, torch.Tensor]]) -> dict[int, float]:
    """{layer: fraction of patches whose nearest neighbour (cosine) in the next frame is itself} (`video_features`)."""
    layers = list(features[0])
    hits, total = {n: 0 for n in layers}, 0
    for video in features:
        for n in layers:
            h = F.normalize(video[n], dim=-1)  # (T, N, dim)
            nearest = (h[:-1] @ h[1:].transpose(1, 2)).argmax(-1)  # (T-1, N)
            hits[n] += int((nearest == torch.arange(h.shape[1])).sum())
        total += (len(h) - 1) * h.shape[1]
    return {n: round(hits[n] / total, 4) for n in layers}


def position_readout(features: list[dict[int, torch.Tensor]], ridge: float = 1.0) -> dict[int, float]:
    """{layer: accuracy of a ridge read-out of each patch's grid index from its feature} (`video_features`): fit on
    the first half of every video's frames, scored on the second half (chance: 1 / patches per frame)."""
    accuracy = {}
    for n in features[0]:
        a = torch.cat([v[n][:len(v[n]) // 2] for v in features]).double()  # (frames, N, dim)
        b = torch.cat([v[n][len(v[n]) // 2:] for v in features]).double()
        patches = a.shape[1]
        mean, std = a.mean((0, 1)), a.std((0, 1)).clamp_min(1e-6)
        xa = F.pad((a - mean) / std, (0, 1), value=1.0).reshape(-1, a.shape[-1] + 1)
        xb = F.pad((b - mean) / std, (0, 1), value=1.0).reshape(-1, b.shape[-1] + 1)
        target = torch.eye(patches, dtype=torch.float64).repeat(len(a), 1)  # row i of a frame: one-hot of i
        w = torch.linalg.solve(xa.T @ xa + ridge * torch.eye(xa.shape[1], dtype=torch.float64), xa.T @ target)
        truth = torch.arange(patches).repeat(len(b))
        accuracy[n] = round(float(((xb @ w).argmax(-1) == truth).double().mean()), 4)
    return accuracy


def fsq_neighbours(levels: tuple[int, ...], count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` random code pairs (a, b) that differ by one level in one FSQ digit."""
    quantizer = FSQ(levels)  # its mixed-radix basis is the code index
    levels_t, basis = quantizer.levels, quantizer.basis
    digits = torch.stack([torch.randint(0, int(level), (count,), generator=generator) for level in levels], -1)
    which = torch.randint(0, len(levels), (count,), generator=generator)
    step = torch.where(digits[torch.arange(count), which] + 1 < levels_t[which], 1, -1)
    other = digits.clone()
    other[torch.arange(count), which] += step
    return (digits * basis).sum(-1), (other * basis).sum(-1)


@torch.no_grad()
def code_neighbour_cosine(embedding: torch.Tensor, levels: tuple[int, ...], offset: int, count: int = 4096,
                          seed: int = 0) -> dict[str, float]:
    """Mean embedding cosine of one-level neighbours and of random code pairs (code c is row c + offset)."""
    g = torch.Generator().manual_seed(seed)
    a, b = fsq_neighbours(levels, count, g)
    size = int(np.prod(levels))
    r1, r2 = torch.randint(0, size, (count,), generator=g), torch.randint(0, size, (count,), generator=g)
    e = F.normalize(embedding.float(), dim=-1)

    def cosine(x, y):
        return round(float((e[x + offset] * e[y + offset]).sum(-1).mean()), 4)

    return {"one_level": cosine(a, b), "random": cosine(r1, r2)}
