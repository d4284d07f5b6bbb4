"""Tokenizers: shapes/dtypes, FSQ code bijection, save/load, dVAE pickle mapping, patch round trip."""
import pickle
import sys
import textwrap

import pytest
import torch

from encoder.tokenizers import load_tokenizer, save_tokenizer
from encoder.tokenizers.dalle import DalleTokenizer, Encoder, convert, main as dalle_main, map_pixels
from encoder.tokenizers.fsq import FSQ, FSQConfig, FSQTokenizer
from encoder.tokenizers.patch import PatchTokenizer, patchify, unpatchify
from toto_robot.checkpoint import CheckpointError, save_weights


def frames(n=2, size=128, seed=0):
    return torch.randint(0, 256, (n, size, size, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.fixture(scope="module")
def fsq():
    torch.manual_seed(0)
    return FSQTokenizer().eval()


# --- FSQ -------------------------------------------------------------------------------------------

def test_fsq_interface_and_round_trip_shapes(fsq):
    assert (fsq.kind, fsq.discrete, fsq.codebook_size, fsq.downsample, fsq.cfg.local) == ("fsq", True, 8192, 8, False)
    codes = fsq.encode(frames())
    assert codes.dtype == torch.int64 and codes.shape == (2, 16, 16)
    assert 0 <= int(codes.min()) and int(codes.max()) < 8192
    out = fsq.decode(codes)
    assert out.dtype == torch.uint8 and out.shape == (2, 128, 128, 3)


def test_fsq_256px_gives_32x32(fsq):
    codes = fsq.encode(frames(1, 256))
    assert codes.shape == (1, 32, 32)
    assert fsq.decode(codes).shape == (1, 256, 256, 3)


def test_fsq_code_index_bijection():
    q = FSQ((8, 8, 8, 4, 4))
    assert q.codebook_size == 8192
    index = torch.arange(8192)
    codes = q.indices_to_codes(index)
    assert codes.shape == (8192, 5) and codes.min() >= -1 and codes.max() <= 1
    assert torch.equal(q.codes_to_indices(codes), index)
    assert len(torch.unique(codes, dim=0)) == 8192
    # any continuous input quantizes onto the grid, and gradients pass straight through
    z = (torch.randn(4096, 5) * 3).requires_grad_()
    zhat = q(z)
    assert torch.equal(q.indices_to_codes(q.codes_to_indices(zhat)), zhat.detach())
    zhat.sum().backward()
    assert z.grad.abs().sum() > 0
    # extreme inputs reach exactly the L_i levels of each digit
    digits = (q.codes_to_indices(q(torch.linspace(-20, 20, 2001)[:, None].expand(-1, 5)))[:, None] // q.basis) % q.levels
    assert [len(torch.unique(d)) for d in digits.T] == [8, 8, 8, 4, 4]


@pytest.mark.parametrize("bad", [
    torch.zeros(1, 128, 128, 3),                    # float
    torch.zeros(128, 128, 3, dtype=torch.uint8),    # no batch dim
    torch.zeros(1, 128, 96, 3, dtype=torch.uint8),  # not square
    torch.zeros(1, 100, 100, 3, dtype=torch.uint8),  # not a multiple of 8
    torch.zeros(1, 3, 128, 128, dtype=torch.uint8),  # channels first
])
def test_bad_frames_raise_value_error(fsq, bad):
    for tokenizer in (fsq, PatchTokenizer()):
        with pytest.raises(ValueError, match="frames must"):
            tokenizer.encode(bad)


def test_bad_codes_raise_value_error(fsq):
    with pytest.raises(ValueError, match=r"\[0, 8192\)"):
        fsq.decode(torch.full((1, 16, 16), 8192))
    with pytest.raises(ValueError, match="shape"):
        fsq.decode(torch.zeros(16, 16, dtype=torch.int64))
    with pytest.raises(ValueError, match="integer"):
        fsq.decode(torch.zeros(1, 16, 16))


def test_fsq_save_load_equal(fsq, tmp_path):
    small = FSQTokenizer(FSQConfig(channels=(8, 16, 16))).eval()
    save_tokenizer(small, tmp_path / "tok")
    assert (tmp_path / "tok" / "tokenizer.safetensors").is_file()
    for spec in (tmp_path / "tok", tmp_path / "tok" / "tokenizer.safetensors"):
        loaded = load_tokenizer(str(spec))
        assert isinstance(loaded, FSQTokenizer) and loaded.cfg == small.cfg
        x = frames(2, 64)
        assert torch.equal(loaded.encode(x), small.encode(x))
        assert torch.equal(loaded.decode(small.encode(x)), small.decode(small.encode(x)))


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_tokenizer(str(tmp_path / "nope"))
    save_weights(tmp_path / "other", "tokenizer", {"w": torch.zeros(1)}, kind="toto", config={})
    with pytest.raises(CheckpointError, match="'toto'"):
        load_tokenizer(str(tmp_path / "other"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError):
        load_tokenizer(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="patch"):
        load_tokenizer("patch:x")


# --- patch -----------------------------------------------------------------------------------------

def test_patch_round_trip_exact(tmp_path):
    tok = load_tokenizer("patch")
    assert (tok.kind, tok.discrete, tok.codebook_size, tok.downsample, tok.patch_dim) == ("patch", False, None, 8, 192)
    x = frames(3, 128)
    tokens = tok.encode(x)
    assert tokens.shape == (3, 16, 16, 192) and tokens.dtype == torch.float32
    assert tokens.min() >= -1 and tokens.max() <= 1
    # token (i, j) is exactly the pixels of patch (i, j), row-major then channel
    assert torch.allclose(tokens[0, 1, 2].reshape(8, 8, 3), x[0, 8:16, 16:24].float() / 127.5 - 1)
    assert torch.equal(tok.decode(tokens), x)
    big = load_tokenizer("patch:16")
    assert big.encode(frames(1, 256)).shape == (1, 16, 16, 768)
    y = torch.randn(2, 32, 32, 3)
    assert torch.equal(unpatchify(patchify(y, 4), 4), y)
    save_tokenizer(big, tmp_path / "p")
    assert load_tokenizer(str(tmp_path / "p")).patch_size == 16
    with pytest.raises(ValueError, match="patch tokens"):
        tok.decode(tokens[..., :100])


# --- DALL-E dVAE -----------------------------------------------------------------------------------

def test_dalle_layout_matches_official_encoder():
    """Parameter names and count of openai/DALL-E dall_e/encoder.py (n_hid=256, 2 blocks/group, 8192)."""
    with torch.device("meta"):
        enc = Encoder()
    keys = set(enc.state_dict())
    assert sum(p.numel() for p in enc.parameters()) == 53_786_240  # the published 53.8M
    assert {"blocks.input.w", "blocks.input.b", "blocks.output.conv.w", "blocks.group_4.block_2.res_path.conv_4.b",
            "blocks.group_2.block_1.id_path.w", "blocks.group_3.block_1.id_path.w"} <= keys
    assert "blocks.group_1.block_1.id_path.w" not in keys and "blocks.group_2.block_2.id_path.w" not in keys
    assert len(keys) == 74
    assert tuple(enc.state_dict()["blocks.input.w"].shape) == (256, 3, 7, 7)


# A stand-in for the `dall_e` package: same module paths, class names and attributes as the
# official source (without attrs), so torch.save pickles it the way encoder.pkl was pickled.
FAKE_UTILS = """
import torch, torch.nn as nn, torch.nn.functional as F
class Conv2d(nn.Module):
    def __init__(self, n_in, n_out, kw, use_float16=True, device=torch.device('cpu'), requires_grad=False):
        super().__init__()
        self.n_in, self.n_out, self.kw = n_in, n_out, kw
        self.use_float16, self.device, self.requires_grad = use_float16, device, requires_grad
        w = torch.empty((n_out, n_in, kw, kw)).normal_(std=1 / (n_in * kw ** 2) ** 0.5)
        self.w, self.b = nn.Parameter(w), nn.Parameter(torch.randn(n_out) * 0.1)
    def forward(self, x):
        return F.conv2d(x, self.w, self.b, padding=(self.kw - 1) // 2)
"""
FAKE_ENCODER = """
import torch, torch.nn as nn
from collections import OrderedDict
from dall_e.utils import Conv2d
class EncoderBlock(nn.Module):
    def __init__(self, n_in, n_out, n_layers):
        super().__init__()
        self.n_in, self.n_out, self.n_layers, self.n_hid = n_in, n_out, n_layers, n_out // 4
        self.post_gain = 1 / (n_layers ** 2)
        self.id_path = Conv2d(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        self.res_path = nn.Sequential(OrderedDict([
            ('relu_1', nn.ReLU()), ('conv_1', Conv2d(n_in, self.n_hid, 3)),
            ('relu_2', nn.ReLU()), ('conv_2', Conv2d(self.n_hid, self.n_hid, 3)),
            ('relu_3', nn.ReLU()), ('conv_3', Conv2d(self.n_hid, self.n_hid, 3)),
            ('relu_4', nn.ReLU()), ('conv_4', Conv2d(self.n_hid, n_out, 1))]))
    def forward(self, x):
        return self.id_path(x) + self.post_gain * self.res_path(x)
class Encoder(nn.Module):
    def __init__(self, n_hid=256, n_blk_per_group=2, input_channels=3, vocab_size=8192):
        super().__init__()
        self.group_count, self.n_hid, self.n_blk_per_group = 4, n_hid, n_blk_per_group
        self.input_channels, self.vocab_size = input_channels, vocab_size
        r, n = range(n_blk_per_group), 4 * n_blk_per_group
        blk = lambda a, b: EncoderBlock(a, b, n)
        pool = ('pool', nn.MaxPool2d(kernel_size=2))
        self.blocks = nn.Sequential(OrderedDict([
            ('input', Conv2d(input_channels, n_hid, 7)),
            ('group_1', nn.Sequential(OrderedDict([*[(f'block_{i + 1}', blk(n_hid, n_hid)) for i in r], pool]))),
            ('group_2', nn.Sequential(OrderedDict([*[(f'block_{i + 1}', blk(n_hid if i == 0 else 2 * n_hid, 2 * n_hid)) for i in r],
                                                   pool]))),
            ('group_3', nn.Sequential(OrderedDict([*[(f'block_{i + 1}', blk(2 * n_hid if i == 0 else 4 * n_hid, 4 * n_hid))
                                                     for i in r], pool]))),
            ('group_4', nn.Sequential(OrderedDict([*[(f'block_{i + 1}', blk(4 * n_hid if i == 0 else 8 * n_hid, 8 * n_hid)) for i in r]]))),
            ('output', nn.Sequential(OrderedDict([('relu', nn.ReLU()), ('conv', Conv2d(8 * n_hid, vocab_size, 1, use_float16=False))]))),
        ]))
    def forward(self, x):
        return self.blocks(x)
"""


@pytest.fixture
def fake_pkl(tmp_path, monkeypatch):
    """encoder.pkl pickled from a fake `dall_e` package, which is then removed again."""
    pkg = tmp_path / "fake_src" / "dall_e"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "utils.py").write_text(textwrap.dedent(FAKE_UTILS))
    (pkg / "encoder.py").write_text(textwrap.dedent(FAKE_ENCODER))
    monkeypatch.syspath_prepend(str(pkg.parent))
    import dall_e.encoder

    torch.manual_seed(0)
    module = dall_e.encoder.Encoder(n_hid=16, n_blk_per_group=1, vocab_size=512).eval()
    path = tmp_path / "encoder.pkl"
    torch.save(module, path)
    for name in [m for m in sys.modules if m == "dall_e" or m.startswith("dall_e.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(pkg.parent)])
    return path, module


def test_dalle_pickle_needs_opt_in_and_maps_onto_our_modules(fake_pkl, tmp_path):
    path, fake = fake_pkl
    with pytest.raises(CheckpointError, match="allow_pickle=True"):
        load_tokenizer(str(path))
    with pytest.raises(ImportError):
        __import__("dall_e")  # the mapping must not need the package
    tok = load_tokenizer(str(path), allow_pickle=True)
    assert isinstance(tok, DalleTokenizer) and (tok.kind, tok.codebook_size, tok.downsample) == ("dalle", 512, 8)
    x = frames(2, 64)
    codes = tok.encode(x)
    with torch.no_grad():
        expected = fake(map_pixels(x.permute(0, 3, 1, 2).float() / 255)).argmax(1)
    assert codes.shape == (2, 8, 8) and torch.equal(codes, expected)
    with pytest.raises(NotImplementedError, match="encoder-only"):
        tok.decode(codes)
    # converted once, it loads without pickle (directly or as a saved tokenizer directory)
    out = convert(path, tmp_path / "encoder.safetensors")
    assert torch.equal(load_tokenizer(str(out)).encode(x), expected)
    dalle_main(["convert", str(path), str(tmp_path / "cli.safetensors")])
    assert torch.equal(load_tokenizer(str(tmp_path / "cli.safetensors")).encode(x), expected)
    save_tokenizer(tok, tmp_path / "dir")
    assert torch.equal(load_tokenizer(str(tmp_path / "dir")).encode(x), expected)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo should-not-run",))


def test_dalle_restricted_unpickler_refuses_other_globals(tmp_path):
    path = tmp_path / "evil.pkl"
    torch.save(_Evil(), path, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(CheckpointError, match="not allowed"):
        load_tokenizer(str(path), allow_pickle=True)


def test_dalle_missing_file_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_tokenizer(str(tmp_path / "encoder.pkl"), allow_pickle=True)
    from encoder.tokenizers.dalle import load_dalle

    with pytest.raises(CheckpointError, match="not found"):
        load_dalle(tmp_path / "encoder.pkl", allow_pickle=True)
    with pytest.raises(CheckpointError, match="not found"):
        load_dalle(tmp_path / "encoder.safetensors")
