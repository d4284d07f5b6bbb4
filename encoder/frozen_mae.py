"""The frozen MAE encoder: uint8 frames -> 8x8 patches -> MAE blocks up to layer L -> pooled features.

The same surface as `TotoEncoder` (call, `token_features`, `feature_dim`, `compute`), so the policy
features, real BC and probes take either. An MAE is an image model: it reads frames, not clips.
pool="cls" is MVP's feature (the CLS token); "avg", "grid<k>" and "attn" pool the patch tokens
as they do for Toto, so the two encoders can also be compared at the same pooling.
"""
from __future__ import annotations

from pathlib import Path

import torch

from encoder.frozen_base import FrozenEncoder, encoder_compute, resolve_layer
from encoder.mae import MAE, MAEConfig
from encoder.pooling import make_pool, pool_width
from encoder.tokenizers import load_tokenizer
from toto_robot.checkpoint import CheckpointError, load_weights

__all__ = ["MAEEncoder", "load_mae_encoder"]


class MAEEncoder(FrozenEncoder):
    kind = "mae"

    def __init__(self, model: MAE, tokenizer, *, resolution: int, layer, pool: str, dtype="auto", device="auto"):
        super().__init__()
        c = model.config
        if resolution // tokenizer.downsample != c.grid or tokenizer.patch_dim != c.patch_dim:
            raise ValueError(f"the tokenizer cuts {resolution}px frames into {resolution // tokenizer.downsample}^2 patches of "
                             f"{tokenizer.patch_dim} values; the MAE reads {c.grid}^2 of {c.patch_dim}")
        self.n_layers, self.dim = c.n_layers, c.dim
        self.layer = resolve_layer(layer, c.n_layers)
        self.pool = pool
        self.pool_module = None if pool == "cls" else make_pool(pool, c.dim)
        self.feature_dim = c.dim if pool == "cls" else pool_width(pool, c.dim)
        self.compute = encoder_compute(dtype, device)
        self.dtype = self.compute.dtype
        self.model = model.to(self.dtype)
        self.tokenizer = tokenizer
        self.resolution, self.grid, self.frames, self.n_start = resolution, c.grid, 1, 1
        self._freeze(self.compute)

    def _frames(self, x) -> torch.Tensor:
        if getattr(x, "ndim", 4) == 5:
            raise ValueError(f"the MAE encoder reads frames (B, H, W, 3), got clips {tuple(x.shape)}: it is an image model "
                             "(encode the frames of a clip one by one)")
        return self.check(x, ndim=(4,))

    def _hidden(self, frames: torch.Tensor, layers: list[int]) -> dict[int, torch.Tensor]:
        patches = self.tokenizer.encode(frames).flatten(1, 2).to(self.compute.device, self.dtype)
        caught = {}
        x = None
        for n in range(1, max(layers) + 1):  # one pass, keeping the requested blocks' outputs
            x = self.model.hidden(patches, 1) if n == 1 else self.model._blocks(self.model.layers[n - 1:n], x)
            if n in layers:
                caught[n] = x
        return caught

    @torch.no_grad()
    def token_features(self, x, layers=None) -> dict[int, torch.Tensor]:
        """{layer: (B, 256, dim) fp32}: the patch tokens after each requested block (CLS dropped)."""
        if layers is None or isinstance(layers, (str, int, float)):
            layers = [self.layer if layers is None else layers]
        layers = sorted({resolve_layer(n, self.n_layers) for n in layers})
        hidden = self._hidden(self._frames(x), layers)
        return {n: h[:, 1:].float() for n, h in hidden.items()}

    @torch.no_grad()
    def forward(self, x) -> torch.Tensor:
        """(B, feature_dim) fp32 per frame: the CLS token (pool="cls") or the pooled patch tokens."""
        hidden = self._hidden(self._frames(x), [self.layer])[self.layer]
        if self.pool_module is None:
            return hidden[:, 0].float()
        return self.pool_module(hidden[:, 1:].float())

    def extra_repr(self) -> str:
        return f"layer={self.layer}/{self.n_layers}, pool={self.pool}, dtype={self.dtype}"


def load_mae_encoder(directory, layer, pool: str, dtype="auto", device="auto") -> MAEEncoder:
    """The MAE exported to `directory` (mae.safetensors/.json + the patch tokenizer's files); `load_encoder` is the public door."""

    directory = Path(directory).expanduser()
    if pool != "cls":
        make_pool(pool, 8)
    state, meta = load_weights(directory, "mae", kind="mae")
    config = MAEConfig.from_dict(meta["config"])
    resolve_layer(layer, config.n_layers)
    model = MAE(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f"{directory}/mae.safetensors does not match mae.json ({str(error).splitlines()[0]})") from None
    tokenizer = load_tokenizer(directory / f"{meta.get('tokenizer', 'tokenizer')}.safetensors")
    return MAEEncoder(model, tokenizer, resolution=int(meta["resolution"]), layer=layer, pool=pool, dtype=dtype, device=device)
