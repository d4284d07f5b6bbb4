"""Token stability: does a tokenizer give a still patch the same code from one frame to the next?

A policy reads the frozen encoder at every control step. If a patch whose pixels did not change
gets a new code, the transformer sees an unrelated token (its embedding knows nothing of the
code's neighbours) and the features jump with no change in the scene. These figures are measured
on videos the tokenizer never saw (issue 24 found 21.7% of bit-identical patches flipping with
the batch-entropy bonus on, 6.4% without it):

- `static_flip`: of the patches whose pixels are bit-identical between consecutive frames, the
  fraction whose code changes, per video and their mean (each task and camera counts alike:
  pooled over patches, the wide third-person views, mostly still background, would hide the wrist
  views; `static_flip_pooled` is that pooled figure);
- `static_context_flip`: the same for patches whose whole 7 x 7-patch neighbourhood is identical
  too (a flip there would be numerical noise; a flip only in `static_flip` is context seen through
  the encoder's receptive field);
- `flip_stride1`, `flip_stride4`: the fraction of all patches whose code changes between frames
  1 and 4 steps apart (motion included);
- `stored_agreement`: codes of a raw frame against codes of the same frame after the corpus's
  storage round trip (video codec), when the stored frames are given.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CONTEXT = 7  # patches a side of the neighbourhood `static_context_flip` asks to be still


def encode_video(tokenizer, frames: np.ndarray, batch: int = 64) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, g, g) int64 codes."""
    out = [tokenizer.encode(torch.from_numpy(np.ascontiguousarray(frames[i:i + batch]))) for i in range(0, len(frames), batch)]
    return torch.cat(out).cpu().numpy()


def still_patches(frames: np.ndarray, patch: int) -> np.ndarray:
    """(T-1, g, g) bool: patches whose pixels are bit-identical in frames t and t+1."""
    T, H, W, _ = frames.shape
    same = (frames[1:] == frames[:-1]).all(-1)
    return same.reshape(T - 1, H // patch, patch, W // patch, patch).all(axis=(2, 4))


def still_context(still: np.ndarray, size: int = CONTEXT) -> np.ndarray:
    """(T-1, g, g) bool: patches whose whole size x size neighbourhood is still (borders count as still)."""
    moving = torch.from_numpy(~still).float()[:, None]
    spread = F.max_pool2d(moving, size, stride=1, padding=size // 2)[:, 0]
    return (spread == 0).numpy()


def _rate(flips: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    return int((flips & mask).sum()), int(mask.sum())


def video_stability(codes: np.ndarray, frames: np.ndarray, patch: int) -> dict:
    """Counts (flipped, total) for one video's codes (T, g, g) and raw frames (T, H, W, 3)."""
    still = still_patches(frames, patch)
    flips = codes[1:] != codes[:-1]
    counts = {"static": _rate(flips, still), "static_context": _rate(flips, still & still_context(still)),
              "stride1": (int(flips.sum()), int(flips.size))}
    far = codes[4:] != codes[:-4]
    counts["stride4"] = (int(far.sum()), int(far.size))
    return counts


def _fraction(pair: tuple[int, int]) -> float | None:
    return round(pair[0] / pair[1], 4) if pair[1] else None


def measure(tokenizer, videos: dict[str, np.ndarray], stored: dict[str, np.ndarray] | None = None) -> dict:
    """Stability figures of `tokenizer` on `videos` ({name: (T, H, W, 3) uint8 raw frames}).

    `stored` holds the same videos after the corpus's storage round trip (same names and shapes).
    Returns overall fractions and a per-video breakdown of the static flips."""
    patch = tokenizer.downsample
    totals = {key: [0, 0] for key in ("static", "static_context", "stride1", "stride4", "stored")}
    per_video = {}
    for name, frames in videos.items():
        codes = encode_video(tokenizer, frames)
        counts = video_stability(codes, frames, patch)
        if stored:
            other = encode_video(tokenizer, stored[name])
            counts["stored"] = (int((codes == other).sum()), int(codes.size))
        for key, (hit, total) in counts.items():
            totals[key][0] += hit
            totals[key][1] += total
        per_video[name] = {"static_flip": _fraction(counts["static"]), "still_patches": _fraction(
            (counts["static"][1], counts["stride1"][1]))}
    rates = [v["static_flip"] for v in per_video.values() if v["static_flip"] is not None]
    result = {"static_flip": round(float(np.mean(rates)), 4) if rates else None,
              "static_flip_pooled": _fraction(totals["static"]), "static_context_flip": _fraction(totals["static_context"]),
              "flip_stride1": _fraction(totals["stride1"]), "flip_stride4": _fraction(totals["stride4"]),
              "stored_agreement": _fraction(totals["stored"]), "videos": per_video}
    return result


def frame_psnr(frames: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """(B,) PSNR (dB) of uint8 frames against their reconstructions, on the CPU: a tokenizer on a GPU
    decodes there, and the frames stay where the caller read them."""
    mse = (recon.cpu().float() - frames.cpu().float()).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return 10 * torch.log10(255.0**2 / mse)


def psnr(tokenizer, frames: np.ndarray, batch: int = 64) -> float:
    """Mean PSNR (dB) of the uint8 encode -> decode round trip over `frames`."""
    values = []
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(np.ascontiguousarray(frames[i:i + batch]))
        values.append(frame_psnr(x, tokenizer.decode(tokenizer.encode(x))))
    return round(float(torch.cat(values).mean()), 2)
