"""One interface for every tokenizer: uint8 frames in, codes (or patch vectors) out.

The transformer, offline tokenization (pretrain/) and the frozen encoder only ever see this
interface, so swapping our FSQ tokenizer for the official DALL-E dVAE or continuous patches is a
config change (`tokenizer=fsq|dalle|patch`), never a code change.
"""
from __future__ import annotations

import torch
from torch import nn


class Tokenizer(nn.Module):
    """Frames (N, H, W, 3) uint8 -> tokens on a (H/downsample) x (W/downsample) grid.

    Discrete tokenizers return LongTensor codes (N, g, g) in [0, codebook_size); continuous ones
    (patch) return float vectors (N, g, g, dim). `decode` inverts `encode` where a decoder exists.
    """

    downsample: int = 8
    codebook_size: int | None = None
    discrete: bool = True
    kind: str = ""

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"the {self.kind or type(self).__name__} tokenizer has no decoder")

    def check_frames(self, frames) -> torch.Tensor:
        """Validate uint8 (N, H, W, 3) square frames, H a multiple of `downsample`; one-line errors."""
        if not isinstance(frames, torch.Tensor):
            raise ValueError(f"frames must be a torch.Tensor, got {type(frames).__name__} (use torch.from_numpy)")
        if frames.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got dtype {frames.dtype}")
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must have shape (N, H, W, 3), got {tuple(frames.shape)}")
        h, w = frames.shape[1:3]
        if h != w or h == 0 or h % self.downsample:
            raise ValueError(f"frames must be square with a side that is a positive multiple of {self.downsample}, got {h}x{w}")
        return frames

    def check_codes(self, codes) -> torch.Tensor:
        """Validate integer codes (N, g, g) in [0, codebook_size)."""
        if not isinstance(codes, torch.Tensor) or codes.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"codes must be an integer torch.Tensor (N, g, g), got {getattr(codes, 'dtype', type(codes).__name__)}")
        if codes.ndim != 3 or codes.shape[1] != codes.shape[2]:
            raise ValueError(f"codes must have shape (N, g, g), got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got [{int(codes.min())}, {int(codes.max())}]")
        return codes.long()

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, downsample={self.downsample}, codebook_size={self.codebook_size}"


def frames_to_float(frames: torch.Tensor, device=None) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    return frames.to(device).permute(0, 3, 1, 2).float().div_(255)


def float_to_frames(images: torch.Tensor) -> torch.Tensor:
    """float (N, 3, H, W) in [0, 1] -> uint8 (N, H, W, 3), rounded and clamped."""
    return images.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu()


TOKENIZER_NAME = "tokenizer"  # checkpoint files: tokenizer.safetensors + tokenizer.json
KINDS = {"fsq": "fsq_tokenizer", "dalle": "dalle_encoder", "patch": "patch_tokenizer"}  # Tokenizer.kind -> checkpoint kind


def save_tokenizer(tokenizer: Tokenizer, directory, **extra):
    """Write `directory`/tokenizer.safetensors + tokenizer.json (config to rebuild it, plus `extra`); return the JSON path."""
    from toto_robot.checkpoint import save_weights

    if tokenizer.kind == "fsq":
        config, state = tokenizer.cfg.to_dict(), tokenizer.state_dict()
    elif tokenizer.kind == "dalle":
        config, state = {}, tokenizer.encoder.state_dict()  # the layout is implied by the weight shapes
    elif tokenizer.kind == "patch":
        config, state = {"patch_size": tokenizer.patch_size}, {}
    else:
        raise ValueError(f"cannot save a tokenizer of kind {tokenizer.kind!r}")
    return save_weights(directory, TOKENIZER_NAME, state, kind=KINDS[tokenizer.kind], config=config, **extra)


def load_tokenizer(spec, *, allow_pickle: bool = False) -> Tokenizer:
    """A tokenizer from a spec string (the `tokenizer=` config value).

    - "patch" or "patch:<patch_size>": continuous patch tokens (no weights);
    - a directory with tokenizer.safetensors + tokenizer.json (written by `save_tokenizer`, e.g. a
      trained FSQ tokenizer);
    - the official DALL-E dVAE `encoder.pkl` (only with allow_pickle=True: unpickling runs code) or
      its converted `.safetensors` (`python -m encoder.tokenizers.dalle convert`).
    Missing paths and checkpoints of another kind raise CheckpointError.
    """
    from pathlib import Path

    from toto_robot.checkpoint import CheckpointError, load_weights

    spec = str(spec)
    if spec == "patch" or spec.startswith("patch:"):
        from encoder.tokenizers.patch import PatchTokenizer

        size = spec.partition(":")[2] or "8"
        if not size.isdigit() or int(size) < 1:
            raise ValueError(f"tokenizer spec {spec!r}: use 'patch' or 'patch:<patch_size>' with a positive integer size")
        return PatchTokenizer(int(size))
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".safetensors" and path.with_suffix(".json").is_file():
        path, name = path.parent, path.stem  # a checkpoint named by its weights file
    elif path.is_file():
        from encoder.tokenizers.dalle import load_dalle

        return load_dalle(path, allow_pickle=allow_pickle)
    elif path.is_dir():
        name = TOKENIZER_NAME
    else:
        raise CheckpointError(f"tokenizer {spec!r} not found: expected a directory with tokenizer.safetensors + tokenizer.json, "
                              "'patch[:<size>]', or a DALL-E encoder.pkl / converted .safetensors")
    state, meta = load_weights(path, name)
    kind, config = meta.get("kind"), meta.get("config") or {}
    if kind == "fsq_tokenizer":
        from encoder.tokenizers.fsq import FSQConfig, FSQTokenizer

        try:
            tokenizer = FSQTokenizer(FSQConfig.from_saved(meta.get("config"), f"{path}/{name}.json"))
            tokenizer.load_state_dict(state, strict=True)
        except CheckpointError:
            raise
        except (TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"{path}/{name}: weights do not match the saved FSQ config ({str(error).splitlines()[0]})") from None
        return tokenizer.eval()
    if kind == "dalle_encoder":
        from encoder.tokenizers.dalle import DalleTokenizer, Encoder

        return DalleTokenizer(Encoder.from_state_dict(state))
    if kind == "patch_tokenizer":
        from encoder.tokenizers.patch import PatchTokenizer

        return PatchTokenizer(int(config.get("patch_size", 8)))
    raise CheckpointError(f"{path}/{name}.json holds a {kind!r} checkpoint, not a tokenizer ({', '.join(KINDS.values())})")
