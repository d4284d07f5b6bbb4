"""Feature providers: an observation batch -> the float32 vectors a policy reads.

One interface, `provider(obs_batch) -> np.ndarray float32 (B, provider.dim)`, so DAgger, BC and
evaluation are the same code whether the policy sees frozen Toto features, features of an
untrained Toto of the same architecture (the "does pre-training matter" baseline) or the
privileged state (the upper bound). `obs_batch` is a gymnasium Dict observation with a leading
batch axis (a vector env's observation, or a single env's with `[None]` added).

Features are computed once, when a sample is stored (policies/buffer.py), and never recomputed:
the encoder is frozen, so recomputing would only cost time (MVP cached them the same way). The
encoder therefore never sees a gradient: it runs under no_grad and returns plain numpy.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from encoder.frozen import TotoEncoder, load_encoder
from encoder.frozen_base import DEFAULT_LAYER
from encoder.model import Toto, TotoConfig
from encoder.tokenizers import load_tokenizer
from encoder.tokenizers.base import frames_to_float
from encoder.tokenizers.fsq import FSQConfig, FSQTokenizer
from policies.configuration import provider_pool
from toto_robot.checkpoint import CheckpointError, fingerprint, read_meta

__all__ = ["FeatureProvider", "RandomTotoFeatures", "StateFeatures", "TotoFeatures", "make_features", "random_encoder"]

PRETRAIN_HINT = "run `python pretrain/run.py` first or pass encoder.path=<encoder dir>"


class FeatureProvider:
    """Base class: `key` is the observation key read; `dim` the feature size (None until known)."""

    key: str = ""
    dim: int | None = None

    def __call__(self, obs: dict) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _read(self, obs: dict) -> np.ndarray:
        if self.key not in obs:
            raise KeyError(f"{type(self).__name__} reads obs[{self.key!r}], the env gives {sorted(obs)}: add it to obs_mode")
        return np.asarray(obs[self.key])


class StateFeatures(FeatureProvider):
    """The privileged state vector obs["state"] as it is (the upper-bound policy input)."""

    key = "state"

    def __call__(self, obs: dict) -> np.ndarray:
        state = self._read(obs).astype(np.float32)
        if state.ndim != 2:
            raise ValueError(f"expected a batch of states (B, state_dim), got shape {state.shape}")
        self.dim = state.shape[1]
        return state


class TotoFeatures(FeatureProvider):
    """Frozen Toto features of obs["pixels"] (uint8 (B, H, W, 3)) through a `TotoEncoder`.

    batch_size bounds how many frames go through the encoder at once (memory, not results).
    """

    key = "pixels"

    def __init__(self, encoder, batch_size: int = 64):
        self.encoder, self.batch_size = encoder, int(batch_size)
        self.dim = int(encoder.feature_dim)

    def __call__(self, obs: dict) -> np.ndarray:
        pixels = self._read(obs)
        if pixels.ndim != 4:
            raise ValueError(f"expected a batch of frames (B, H, W, 3), got shape {pixels.shape}")
        with torch.no_grad():
            out = [self.encoder(pixels[i:i + self.batch_size]) for i in range(0, len(pixels), self.batch_size)]
        return torch.cat(out).float().cpu().numpy()


class RandomTotoFeatures(TotoFeatures):
    """Features of an *untrained* Toto with the architecture of the encoder in `encoder_dir`.

    The control for "does video pre-training help the policy": same tokenizer config, transformer
    config, layer, pooling and feature size, seeded random weights (`random_encoder`).
    """

    def __init__(self, encoder_dir, *, layer, pool: str, seed: int = 0, dtype="auto", batch_size: int = 64,
                 device="auto", trained_tokenizer: bool = False):
        super().__init__(random_encoder(encoder_dir, seed=seed, layer=layer, pool=pool, dtype=dtype, device=device,
                                        trained_tokenizer=trained_tokenizer), batch_size)


@torch.no_grad()
def _spread_codes(tokenizer, resolution: int, seed: int) -> None:
    """Standardize a fresh FSQ encoder's latents on noise images (scale and shift its last conv).

    Freshly initialised, the latents are tiny and every patch rounds to the same code (measured:
    one code for all of four sim frames at the nano config), so every image would give the same
    features and the baseline would be "no image" rather than "random features". Standardized,
    the codes follow the image content, as a random-weights network's features do.
    """
    noise = torch.randint(0, 256, (16, resolution, resolution, 3), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(seed))
    z = tokenizer.encoder(frames_to_float(noise))
    mean, std = z.mean((0, 2, 3)), z.std((0, 2, 3)).clamp_min(1e-8)
    last = tokenizer.encoder.net[-1]
    last.weight.div_(std[:, None, None, None])
    last.bias.sub_(mean).div_(std)


def random_encoder(encoder_dir, *, layer=DEFAULT_LAYER, pool: str, seed: int = 0, dtype="auto", device="auto",
                   trained_tokenizer: bool = False):
    """A frozen `TotoEncoder` with the configs of `encoder_dir` (toto.json + tokenizer.json) and
    seeded random weights (no trained weights are read). The global torch RNG is left as it was.
    FSQ tokenizers (the pipeline's own) and patch input (no tokenizer weights: both baselines read
    the same patches) are supported; others raise ValueError.
    trained_tokenizer=True keeps the directory's trained tokenizer and randomizes only the
    transformer: what the transformer's pre-training adds, apart from the tokenizer's."""
    directory = Path(encoder_dir).expanduser()
    meta = read_meta(directory, "toto", kind="toto")
    tok_meta = read_meta(directory, meta.get("tokenizer", "tokenizer"))
    kind = tok_meta.get("kind")
    if kind not in ("fsq_tokenizer", "patch_tokenizer"):
        raise ValueError(f"{directory}: a random baseline needs an FSQ or patch tokenizer, found {kind!r}")
    resolution = int(meta["resolution"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Toto(TotoConfig.from_dict(meta["config"]))
        if trained_tokenizer or kind == "patch_tokenizer":
            tokenizer = load_tokenizer(directory / f"{meta.get('tokenizer', 'tokenizer')}.safetensors")
        else:
            tokenizer = FSQTokenizer(FSQConfig.from_saved(tok_meta["config"])).eval()
            _spread_codes(tokenizer, resolution, seed)
    return TotoEncoder(model, tokenizer, resolution=resolution, frames=meta.get("frames"), layer=layer, pool=pool, dtype=dtype,
                       device=device)


def make_features(spec, path=None) -> FeatureProvider:
    """The feature provider of an `EncoderSpec` (policies/configuration.py); `path` overrides spec.path.

    A missing or invalid encoder checkpoint is one CheckpointError line that says how to make one.
    Prints which device and precision the encoder runs at, and why (toto_robot/compute.py).
    """
    if spec.kind == "state":
        return StateFeatures()
    path = path or spec.path
    directory = Path(path).expanduser()
    want, other = ("mae", "toto") if spec.kind == "mae" else ("toto", "mae")
    if not (directory / f"{want}.json").is_file():
        if (directory / f"{other}.json").is_file():
            fix = ("encoder=mae (or encoder.path=<a Toto export>)" if other == "mae"
                   else "encoder=toto, or encoder.path=<an MAE export> (python pretrain/run.py objective=mae)")
            raise CheckpointError(f"{path} holds {'an MAE' if other == 'mae' else 'a Toto'} encoder, not the {spec.kind} "
                                  f"features asked for: use {fix}")
        hint = "run `python pretrain/run.py objective=mae` first" if want == "mae" else PRETRAIN_HINT
        raise CheckpointError(f"no {'MAE ' if want == 'mae' else ''}encoder checkpoint at {path}: {hint}")
    try:
        if spec.kind in ("random", "random_trunk"):
            provider = RandomTotoFeatures(path, seed=spec.seed, layer=spec.layer, pool=provider_pool(spec.pool), dtype=spec.dtype,
                                          batch_size=spec.batch_size, device=spec.device,
                                          trained_tokenizer=spec.kind == "random_trunk")
        else:  # toto or mae: load_encoder reads either export
            model = load_encoder(path, layer=spec.layer, pool=provider_pool(spec.pool), dtype=spec.dtype, device=spec.device)
            provider = TotoFeatures(model, batch_size=spec.batch_size)
    except CheckpointError as error:
        raise CheckpointError(f"{error} ({PRETRAIN_HINT})") from None
    provider.encoder.compute.announce(f"{spec.kind} features")
    return provider


def trained_spec(spec, provider):
    """The spec a trained policy saves: the export's absolute path, its content fingerprint and the
    precision the features were computed in (evaluation and the robot check them: check_encoder)."""
    encoder = getattr(provider, "encoder", None)
    if spec.kind == "state" or encoder is None:
        return spec
    path = Path(spec.path).expanduser().resolve()
    return replace(spec, path=str(path), fingerprint=fingerprint(path), precision=encoder.compute.precision)


def check_encoder(spec, path, allow_other: bool = False) -> str | None:
    """The fingerprint of the export at `path`, refused in one line when the policy (`spec`) was trained
    on another one, unless `allow_other` (then the caller names the export in its results)."""
    if spec.kind == "state" or not spec.fingerprint:
        return None
    found = fingerprint(Path(path).expanduser())
    if found != spec.fingerprint and not allow_other:
        raise CheckpointError(f"the policy was trained on the export {spec.path} (fingerprint {spec.fingerprint}); {path} holds "
                              f"{found}: use the export it was trained on, or allow_other_encoder=true to run it on this one")
    return found
