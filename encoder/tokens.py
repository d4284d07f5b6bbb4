"""The token-id scheme, in one place (docs/design.md section 3; paper section 3.1).

    0              padding (never trained on)
    1              start of a video clip
    2              end of a sequence (clip or packed images)
    3              start of a packed-image sequence
    4 .. 4+K-1     visual codes 0..K-1 of a discrete tokenizer with K codes (K=8192 by default)

A video sequence is  [1, codes of frame 1, ..., codes of frame T, 2];
an image sequence is [3, codes of image 1, ..., codes of image 16, 2], so both have length
T*g*g + 2 for T frames (or images) of g x g tokens and the two kinds batch together.
"""
from __future__ import annotations

import numpy as np

PAD = 0
VIDEO_START = 1
END = 2
IMAGE_START = 3
NUM_SPECIAL = 4
CODE_OFFSET = NUM_SPECIAL  # token id of visual code 0
DEFAULT_CODEBOOK = 8192


def vocab_size(codebook_size: int = DEFAULT_CODEBOOK) -> int:
    """Embedding rows a model needs for a tokenizer with `codebook_size` codes."""
    return codebook_size + NUM_SPECIAL


def codes_to_ids(codes):
    """Visual codes (any int array or tensor) -> token ids."""
    return codes + CODE_OFFSET


def ids_to_codes(ids):
    """Token ids of visual codes -> codes (special ids give negative values)."""
    return ids - CODE_OFFSET


def sequence_length(frames: int, grid: int) -> int:
    return frames * grid * grid + 2


def build_sequence(codes: np.ndarray, kind: str) -> np.ndarray:
    """Codes (N, g, g) of N frames ("video") or N images ("image") -> uint16 token ids (N*g*g+2,)."""
    if kind not in ("video", "image"):
        raise ValueError(f"kind={kind!r}: use 'video' or 'image'")
    codes = np.asarray(codes)
    if codes.ndim != 3 or codes.shape[1] != codes.shape[2]:
        raise ValueError(f"codes of shape {codes.shape}: expected (frames, g, g)")
    if codes.size and (codes.min() < 0 or codes.max() > np.iinfo(np.uint16).max - CODE_OFFSET):
        raise ValueError("visual codes out of range for uint16 token ids")
    start = VIDEO_START if kind == "video" else IMAGE_START
    body = codes.reshape(-1).astype(np.int64) + CODE_OFFSET
    return np.concatenate([[start], body, [END]]).astype(np.uint16)
