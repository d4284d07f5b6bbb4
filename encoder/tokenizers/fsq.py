"""Our own trainable discrete tokenizer: a small conv autoencoder with Finite Scalar Quantization.

FSQ (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made Simple") replaces the VQ
codebook with a fixed grid: each of d latent channels is squashed into a bounded range and
rounded to one of L_i levels, so the code index is just the mixed-radix number of the d digits.
No codebook to learn, no commitment loss, no dead codes to revive, which is what makes a
tokenizer trainable in minutes on a CPU (a cheap batch-entropy bonus, `FSQ.batch_entropy`, lifts
codebook usage from ~45% to >95% in such short runs). Levels [8, 8, 8, 4, 4] give 8192 codes, the
size of the DALL-E dVAE vocabulary the paper uses.

Two recipes (docs/results.md, sections 1, 2 and 4):
- `tokenizer=fsq`, the wide recipe (FSQConfig's and TokenizerTrainConfig's own defaults; the paper presets'): 3x3
  convs and a residual block at the token grid (~50 px of context), the entropy bonus, [8, 8, 8, 4, 4]. Its codes hash
  their neighbourhood: 23% of still 8x8 patches change code between control steps;
- `tokenizer=fsq_stable`, the default of `python pretrain/run.py` since the representation study (as the
  targets of objective=patch_dvae): a patch-local encoder (`local`: 1x1 and non-overlapping 2x2 stride-2
  convs, so a code is a function of its own 8x8 pixels and a still patch never changes its code),
  no entropy bonus, the FSQ paper's [8, 8, 8, 6, 5], colour permutations so the red cube keeps its
  colour.

Nothing in the encoder runs at full resolution (space-to-depth first), so tokenizing a corpus on a
CPU is cheap. It is fully convolutional, so 256px frames give 32x32 codes for the paper's
coarse-to-fine fine-tune. The decoder keeps its 3x3 convs in both recipes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from encoder.tokenizers.base import Tokenizer, float_to_frames, frames_to_float
from toto_robot.checkpoint import CheckpointError, read_fields


@dataclass
class FSQConfig:
    """Everything needed to rebuild an FSQ tokenizer (saved in tokenizer.json)."""

    levels: tuple[int, ...] = (8, 8, 8, 4, 4)
    channels: tuple[int, ...] = (32, 64, 128)  # encoder width after each 2x downsampling (decoder mirrors it)
    res_blocks: int = 1  # residual blocks at the token resolution, in encoder and decoder each
    decoder_channels: tuple[int, ...] | None = None  # None: same as `channels`
    # patch-local encoder: 1x1 convs and non-overlapping 2x2 stride-2 convs, so a code is a function
    # of its own downsample x downsample pixels alone and a still patch can never change its code
    # (with 3x3 convs the neighbourhood leaks into the code and still patches flip: docs/results.md, section 1).
    # The decoder keeps its 3x3 convs: context there helps reconstruction and touches no code.
    local: bool = False

    def __post_init__(self):
        self.levels = tuple(int(v) for v in self.levels)
        self.channels = tuple(int(v) for v in self.channels)
        if self.decoder_channels is not None:
            self.decoder_channels = tuple(int(v) for v in self.decoder_channels)
        if not self.levels or min(self.levels) < 2:
            raise ValueError(f"FSQ levels {self.levels}: need at least one level count, each >= 2")
        if not self.channels or (self.decoder_channels and len(self.decoder_channels) != len(self.channels)):
            raise ValueError(f"channels {self.channels} / decoder_channels {self.decoder_channels} must be non-empty and of equal length")

    @property
    def downsample(self) -> int:
        return 2 ** len(self.channels)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_saved(cls, config: dict, where: str = "tokenizer.json") -> "FSQConfig":
        """The config a tokenizer.json holds, read strictly (toto_robot.checkpoint.read_fields); those
        saved before `local` existed (format 0) had the 3x3-conv encoder."""
        if isinstance(config, dict):
            config = {"local": False, **config}
        return cls(**read_fields(config, cls, where, require_all=True))


class FSQ(nn.Module):
    """Finite scalar quantizer over the last dimension, with the implicit codebook index.

    Follows the paper's reference code: bound z_i to (-(L_i-1)/2, (L_i-1)/2) (shifted by a half
    for even L_i so that exactly L_i integers fall inside), round with a straight-through
    gradient, and rescale to [-1, 1]. Index = sum_i digit_i * prod_{j<i} L_j.
    """

    def __init__(self, levels: tuple[int, ...], eps: float = 1e-3):
        super().__init__()
        levels_t = torch.tensor(levels, dtype=torch.int64)
        self.register_buffer("levels", levels_t, persistent=False)
        self.register_buffer("basis", torch.cumprod(torch.tensor((1,) + tuple(levels[:-1])), 0), persistent=False)
        self.register_buffer("half_width", levels_t // 2, persistent=False)
        self.eps = eps
        self.dim = len(levels)
        self.codebook_size = math.prod(levels)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        levels = self.levels.to(z.dtype)
        half_l = (levels - 1) * (1 - self.eps) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Continuous z (..., d) -> quantized values in [-1, 1] (..., d); gradients pass straight through."""
        bounded = self.bound(z)
        quantized = bounded + (bounded.round() - bounded).detach()
        return quantized / self.half_width.to(z.dtype)

    def batch_entropy(self, z: torch.Tensor, temperature: float = 0.5, max_tokens: int = 2048) -> torch.Tensor:
        """Entropy (nats) of the code distribution averaged over a batch of continuous latents z (..., d).

        Each token gets a soft assignment to the levels of every digit (softmax of minus squared
        distance / temperature after `bound`); their product is a soft distribution over all codes,
        averaged over (up to `max_tokens` random) tokens. Maximizing it spreads the batch over the
        codebook (cf. the entropy term of MAGVIT-v2's LFQ); FSQ alone left ~40% of the codes unused
        after a few minutes of training. Cost: one (T x 512) @ (T x 16) matmul, ~25 ms a step.
        """
        flat = z.reshape(-1, self.dim).float()
        if len(flat) > max_tokens:
            flat = flat[torch.randperm(len(flat), device=flat.device)[:max_tokens]]
        bounded = self.bound(flat)
        probs = []
        for i, levels in enumerate(self.levels.tolist()):
            grid = torch.arange(levels, device=flat.device, dtype=flat.dtype) - levels // 2
            probs.append(torch.softmax(-(bounded[:, i, None] - grid) ** 2 / temperature, dim=-1))

        def outer(ps):  # per-token product distribution over the digits in ps: (T, prod L)
            out = ps[0]
            for p in ps[1:]:
                out = (out[:, :, None] * p[:, None, :]).reshape(len(flat), -1)
            return out

        # mean over tokens of the full product = (first digits)^T @ (last digits) / T: one matmul
        # instead of materializing T x codebook_size
        half = (self.dim + 1) // 2
        mean = (outer(probs[:half]).T @ outer(probs[half:])).reshape(-1) / len(flat) if self.dim > 1 else probs[0].mean(0)
        return -(mean * mean.clamp_min(1e-12).log()).sum()

    def codes_to_indices(self, zhat: torch.Tensor) -> torch.Tensor:
        digits = (zhat * self.half_width + self.half_width).round().long()
        return (digits * self.basis).sum(-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        digits = (indices.long().unsqueeze(-1) // self.basis) % self.levels
        return (digits - self.half_width).float() / self.half_width


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2 if k % 2 else 0)


class ResBlock(nn.Module):
    """x + conv(act(conv(act(x)))): depth at the token resolution, where convs are cheap."""

    def __init__(self, channels: int, k: int = 3):
        super().__init__()
        self.conv1, self.conv2 = _conv(channels, channels, k), _conv(channels, channels, k)
        nn.init.zeros_(self.conv2.weight)  # starts as identity: stable without normalization layers

    def forward(self, x):
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class FSQEncoder(nn.Module):
    """(N, 3, H, W) in [0, 1] -> (N, d, H/ds, W/ds) continuous latents.

    The first 2x downsampling is space-to-depth (PixelUnshuffle) and each further one a stride-2
    conv: no conv ever runs at full resolution, where it would cost the most for the least gain.
    """

    def __init__(self, cfg: FSQConfig):
        super().__init__()
        layers, cin = [nn.PixelUnshuffle(2)], 12
        k, down = (1, 2) if cfg.local else (3, 3)  # kernel at a resolution, kernel of a 2x downsampling
        for i, c in enumerate(cfg.channels):
            layers += [_conv(cin, c, k if i == 0 else down, stride=1 if i == 0 else 2), nn.SiLU()]
            cin = c
        layers += [ResBlock(cin, k) for _ in range(cfg.res_blocks)]
        layers += [nn.SiLU(), _conv(cin, len(cfg.levels), 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x * 2 - 1)


class FSQDecoder(nn.Module):
    """Quantized latents (N, d, g, g) -> (N, 3, g*ds, g*ds): conv + PixelShuffle per 2x upsampling.

    The last stage predicts 2x2 pixel blocks (12 channels) and shuffles them into place, the
    mirror of the encoder's space-to-depth, so again nothing runs at full resolution.
    """

    def __init__(self, cfg: FSQConfig):
        super().__init__()
        chans = list(cfg.decoder_channels or cfg.channels)[::-1]
        layers = [_conv(len(cfg.levels), chans[0])]
        layers += [ResBlock(chans[0]) for _ in range(cfg.res_blocks)]
        for c, cout in zip(chans, chans[1:]):
            layers += [nn.SiLU(), _conv(c, 4 * cout), nn.PixelShuffle(2)]
        layers += [nn.SiLU(), _conv(chans[-1], 12), nn.PixelShuffle(2)]
        self.net = nn.Sequential(*layers)

    def forward(self, zhat):
        return self.net(zhat) * 0.5 + 0.5


class FSQTokenizer(Tokenizer):
    """Trainable discrete tokenizer: conv encoder -> FSQ (8,192 codes by default) -> conv decoder."""

    kind = "fsq"
    checkpoint_kind = "fsq_tokenizer"
    discrete = True

    def __init__(self, cfg: FSQConfig | None = None):
        super().__init__()
        self.cfg = cfg or FSQConfig()
        self.downsample = self.cfg.downsample
        self.encoder = FSQEncoder(self.cfg)
        self.quantizer = FSQ(self.cfg.levels)
        self.decoder = FSQDecoder(self.cfg)
        self.codebook_size = self.quantizer.codebook_size

    def checkpoint(self) -> tuple[dict, dict]:
        return self.cfg.to_dict(), self.state_dict()

    @classmethod
    def from_checkpoint(cls, config: dict, state: dict, where: str) -> FSQTokenizer:
        try:
            tokenizer = cls(FSQConfig.from_saved(config, f"{where}.json"))
            tokenizer.load_state_dict(state, strict=True)
        except CheckpointError:
            raise
        except (TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"{where}: weights do not match the saved FSQ config ({str(error).splitlines()[0]})") from None
        return tokenizer.eval()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def quantize(self, images: torch.Tensor) -> torch.Tensor:
        """float (N, 3, H, W) in [0, 1] -> quantized latents (N, g, g, d) in [-1, 1].

        Quantization runs in fp32 (also under bf16 autocast in training): bf16 has too few mantissa
        bits to put values near a rounding boundary on the right side.
        """
        return self.quantizer(self.encoder(images).float().movedim(1, -1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path: float (N, 3, H, W) in [0, 1] -> (reconstruction in [0, 1], latents z (N, g, g, d) before quantization)."""
        z = self.encoder(images).float().movedim(1, -1)
        with torch.autocast(z.device.type, enabled=False):
            zhat = self.quantizer(z)
        return self.decoder(zhat.movedim(-1, 1)), z

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        images = frames_to_float(self.check_frames(frames), self.device)
        return self.quantizer.codes_to_indices(self.quantize(images))  # on the tokenizer's device, like its callers' models

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        zhat = self.quantizer.indices_to_codes(self.check_codes(codes).to(self.device))
        return float_to_frames(self.decoder(zhat.movedim(-1, 1)))
