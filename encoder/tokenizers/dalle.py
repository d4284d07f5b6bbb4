"""The official DALL-E dVAE encoder (the paper's tokenizer), reimplemented so its weights load.

The module mirrors openai/DALL-E `dall_e/encoder.py` + `dall_e/utils.py` with the same class and
parameter names (Encoder.blocks.{input, group_1..4.block_k.{id_path, res_path.conv_1..4}, output.conv},
each Conv2d holding `w` and `b`), so the published `encoder.pkl` state maps on one to one:
128x128x3 pixels -> map_pixels (logit-Laplace eps 0.1) -> 8192 x 16 x 16 logits -> argmax codes.
It is encoder-only: OpenAI's decoder is not loaded, so `decode` raises.

`encoder.pkl` is a pickled nn.Module: loading it executes whatever the file says. We never do
that silently: `allow_pickle=True` is required, and even then a restricted unpickler resolves
only an allow-list of torch/collections globals and maps `dall_e.encoder.*`/`dall_e.utils.*` onto
the classes below (the `dall_e` package is not needed). Convert once to safetensors,

    python -m encoder.tokenizers.dalle convert encoder.pkl encoder.safetensors

and load that from then on: no pickle involved.
"""
from __future__ import annotations

import _compat_pickle
import argparse
import pickle
import types
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from encoder.tokenizers.base import Tokenizer, frames_to_float
from toto_robot.checkpoint import CheckpointError
from toto_robot.io import atomic_write

LOGIT_LAPLACE_EPS = 0.1
SAFETENSORS_KIND = "dalle_encoder"  # safetensors metadata "kind" of a converted encoder


def map_pixels(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> the dVAE's input range [eps, 1 - eps] (dall_e.utils.map_pixels)."""
    return (1 - 2 * LOGIT_LAPLACE_EPS) * x + LOGIT_LAPLACE_EPS


class Conv2d(nn.Module):
    """dall_e.utils.Conv2d: 'same'-padded conv with parameters named `w` and `b`."""

    def __init__(self, n_in: int, n_out: int, kw: int):
        super().__init__()
        self.kw = kw
        self.w = nn.Parameter(torch.randn(n_out, n_in, kw, kw) / (n_in * kw**2) ** 0.5)
        self.b = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return F.conv2d(x, self.w, self.b, padding=(self.kw - 1) // 2)


class EncoderBlock(nn.Module):
    """dall_e.encoder.EncoderBlock: id_path(x) + post_gain * res_path(x), bottleneck n_out/4."""

    def __init__(self, n_in: int, n_out: int, n_layers: int):
        super().__init__()
        n_hid = n_out // 4
        self.post_gain = 1 / n_layers**2
        self.id_path = Conv2d(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        self.res_path = nn.Sequential(OrderedDict([
            ("relu_1", nn.ReLU()), ("conv_1", Conv2d(n_in, n_hid, 3)),
            ("relu_2", nn.ReLU()), ("conv_2", Conv2d(n_hid, n_hid, 3)),
            ("relu_3", nn.ReLU()), ("conv_3", Conv2d(n_hid, n_hid, 3)),
            ("relu_4", nn.ReLU()), ("conv_4", Conv2d(n_hid, n_out, 1)),
        ]))

    def forward(self, x):
        return self.id_path(x) + self.post_gain * self.res_path(x)


class Encoder(nn.Module):
    """dall_e.encoder.Encoder (group_count=4): (N, 3, H, W) mapped pixels -> (N, vocab, H/8, W/8) logits."""

    def __init__(self, n_hid: int = 256, n_blk_per_group: int = 2, input_channels: int = 3, vocab_size: int = 8192):
        super().__init__()
        self.input_channels, self.vocab_size = input_channels, vocab_size
        n_layers = 4 * n_blk_per_group
        widths = [n_hid, n_hid, 2 * n_hid, 4 * n_hid, 8 * n_hid]  # input width, then each group's width

        def group(g: int) -> nn.Sequential:
            blocks = [(f"block_{i + 1}", EncoderBlock(widths[g - 1] if i == 0 else widths[g], widths[g], n_layers))
                      for i in range(n_blk_per_group)]
            return nn.Sequential(OrderedDict(blocks + ([("pool", nn.MaxPool2d(kernel_size=2))] if g < 4 else [])))

        self.blocks = nn.Sequential(OrderedDict([
            ("input", Conv2d(input_channels, n_hid, 7)),
            *[(f"group_{g}", group(g)) for g in range(1, 5)],
            ("output", nn.Sequential(OrderedDict([("relu", nn.ReLU()), ("conv", Conv2d(8 * n_hid, vocab_size, 1))]))),
        ]))

    def forward(self, x):
        return self.blocks(x)

    @classmethod
    def from_state_dict(cls, state: dict) -> "Encoder":
        """Build an Encoder of the width/depth/vocabulary the weights imply, and load them strictly."""
        try:
            n_hid, input_channels = state["blocks.input.w"].shape[:2]
            vocab_size = state["blocks.output.conv.w"].shape[0]
            n_blk = len({k.split(".")[2] for k in state if k.startswith("blocks.group_1.block_")})
            encoder = cls(int(n_hid), n_blk, int(input_channels), int(vocab_size))
            encoder.load_state_dict(state, strict=True)
        except (KeyError, RuntimeError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CheckpointError(f"weights do not match the DALL-E dVAE encoder layout ({first})") from None
        return encoder


class DalleTokenizer(Tokenizer):
    """Discrete tokens from the official dVAE encoder: codes = argmax of its logits (encoder only)."""

    kind = "dalle"
    checkpoint_kind = "dalle_encoder"
    discrete = True
    downsample = 8

    def __init__(self, encoder: Encoder | None = None):
        super().__init__()
        self.encoder = (encoder or Encoder()).eval().requires_grad_(False)
        self.codebook_size = self.encoder.vocab_size

    def checkpoint(self) -> tuple[dict, dict]:
        return {}, self.encoder.state_dict()  # the layout is implied by the weight shapes

    @classmethod
    def from_checkpoint(cls, config: dict, state: dict, where: str) -> DalleTokenizer:
        return cls(Encoder.from_state_dict(state))

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        device = self.encoder.blocks.input.w.device
        x = map_pixels(frames_to_float(self.check_frames(frames), device))
        return self.encoder(x).argmax(1)

    def decode(self, tokens):
        raise NotImplementedError("the DALL-E dVAE tokenizer is encoder-only (OpenAI's decoder weights are not loaded): "
                                  "use the fsq or patch tokenizer to get pixels back")


# --- loading the published pickle without the dall_e package -------------------------------------

_MAPPED = {("dall_e.encoder", "Encoder"): Encoder, ("dall_e.encoder", "EncoderBlock"): EncoderBlock,
           ("dall_e.utils", "Conv2d"): Conv2d}
_ALLOWED = {
    ("collections", "OrderedDict"), ("builtins", "set"), ("torch", "device"), ("torch", "Size"),
    ("torch._utils", "_rebuild_tensor"), ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch.nn.modules.container", "Sequential"), ("torch.nn.modules.activation", "ReLU"),
    ("torch.nn.modules.linear", "Identity"), ("torch.nn.modules.pooling", "MaxPool2d"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a pickled dVAE encoder needs; anything else is refused."""

    def find_class(self, module: str, name: str):
        # protocol-2 pickles use Python 2 names (__builtin__.set); the allow-list still decides
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[module, name]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _MAPPED:
            return _MAPPED[module, name]
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a DALL-E encoder pickle")


def _restricted_load(file, **kwargs):
    return _RestrictedUnpickler(file, **kwargs).load()


# torch.load wants a module-like object with Unpickler and load (it subclasses Unpickler itself)
restricted_pickle = types.SimpleNamespace(__name__="restricted_pickle", Unpickler=_RestrictedUnpickler, load=_restricted_load)


def state_dict_from_pickle(path: str | Path, *, allow_pickle: bool = False) -> dict:
    """Encoder weights from the official `encoder.pkl`, through the restricted unpickler."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"DALL-E encoder file {path} not found (download encoder.pkl from OpenAI's CDN, see openai/DALL-E)")
    if not allow_pickle:
        raise CheckpointError(f"refusing to unpickle {path}: a pickle can run code; if you trust it pass allow_pickle=True "
                              f"(config tokenizer.allow_pickle=true) or convert it once with "
                              f"`python -m encoder.tokenizers.dalle convert {path} encoder.safetensors`")
    try:
        module = torch.load(path, map_location="cpu", pickle_module=restricted_pickle, weights_only=False)
    except Exception as error:
        raise CheckpointError(f"{path} is not a loadable DALL-E encoder pickle ({type(error).__name__}: {error})") from None
    if not isinstance(module, Encoder):
        raise CheckpointError(f"{path} holds a {type(module).__name__}, expected a dall_e.encoder.Encoder")
    return {k: v.detach().float().contiguous() for k, v in module.state_dict().items()}


def state_dict_from_safetensors(path: str | Path) -> dict:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"DALL-E encoder file {path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            kind = (f.metadata() or {}).get("kind", SAFETENSORS_KIND)
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as error:
        raise CheckpointError(f"{path} is unreadable as safetensors ({error})") from None
    if kind != SAFETENSORS_KIND:
        raise CheckpointError(f"{path} holds a {kind!r} checkpoint, expected {SAFETENSORS_KIND!r}")
    return state


def load_dalle(path: str | Path, *, allow_pickle: bool = False) -> DalleTokenizer:
    """The dVAE tokenizer from `encoder.pkl` (needs allow_pickle) or its converted .safetensors."""
    path = Path(path)
    state = state_dict_from_safetensors(path) if path.suffix == ".safetensors" else state_dict_from_pickle(path, allow_pickle=allow_pickle)
    return DalleTokenizer(Encoder.from_state_dict(state))


def convert(pkl: str | Path, out: str | Path) -> Path:
    """encoder.pkl -> safetensors (metadata kind=dalle_encoder), written atomically."""
    from safetensors.torch import save_file


    state = state_dict_from_pickle(pkl, allow_pickle=True)
    Encoder.from_state_dict(state)  # fail before writing if the layout is off
    with atomic_write(out) as tmp:
        save_file(state, str(tmp), metadata={"kind": SAFETENSORS_KIND})
    return Path(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m encoder.tokenizers.dalle", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="unpickle encoder.pkl once (restricted) and write safetensors")
    conv.add_argument("pkl")
    conv.add_argument("out")
    args = parser.parse_args(argv)
    try:
        out = convert(args.pkl, args.out)
    except CheckpointError as error:
        raise SystemExit(f"error: {error}")
    print(f"wrote {out} ({sum(v.numel() for v in state_dict_from_safetensors(out).values()) / 1e6:.1f}M parameters)")


if __name__ == "__main__":
    main()
