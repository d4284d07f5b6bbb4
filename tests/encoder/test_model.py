"""The Toto transformer: causality, RoPE, KV cache, early exit, presets, objectives, config checks."""
import math

import pytest
import torch
import torch.nn.functional as F

from encoder.model import KVCache, Toto, TotoConfig, load_toto
from encoder.objectives import next_patch_loss, next_token_loss, normalize_patches
from encoder.presets import PAPER_PARAMS, PRESETS, VQGAN_VOCAB, preset_config
from encoder.tokens import PAD

TINY = dict(dim=32, n_layers=3, n_heads=4, vocab_size=40, max_seq_len=16)


def tiny(seed: int = 0, **overrides) -> Toto:
    torch.manual_seed(seed)
    return Toto(TotoConfig(**{**TINY, **overrides})).eval()


def tokens(batch: int = 2, length: int = 24, vocab: int = 40, seed: int = 1) -> torch.Tensor:
    return torch.randint(4, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_changing_a_token_never_changes_earlier_logits():
    model, x = tiny(), tokens()
    base = model(x).logits
    for t in (0, 5, 23):
        y = x.clone()
        y[:, t] = (y[:, t] + 1 - 4) % 36 + 4
        out = model(y).logits
        torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=1e-6)
        assert (out[:, t] - base[:, t]).abs().max() > 1e-4


def test_rope_base_is_used():
    x = tokens()
    a, b = tiny(rope_base=10000.0), tiny(rope_base=50000.0)
    assert (a(x).logits - b(x).logits).abs().max() > 1e-4  # same weights (same seed), other angles
    head_dim, pos = TINY["dim"] // TINY["n_heads"], torch.arange(16, dtype=torch.float64)[:, None]
    angles = pos * 50000.0 ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.cat((angles, angles), -1)  # dimension i pairs with i + head_dim / 2
    torch.testing.assert_close(b.rope_cos[:16].double(), angles.cos(), rtol=0, atol=1e-5)
    torch.testing.assert_close(b.rope_sin[:16].double(), angles.sin(), rtol=0, atol=1e-5)


def test_kv_cache_incremental_logits_match_full_forward():
    model, x = tiny(), tokens(length=24)  # longer than max_seq_len: the RoPE table grows
    full = model(x).logits
    cache = KVCache()
    parts = [model(x[:, :7], cache=cache).logits, model(x[:, 7:12], cache=cache).logits]
    parts += [model(x[:, i:i + 1], cache=cache).logits for i in range(12, 24)]
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=0, atol=1e-5)
    assert cache.length == cache.position == 24 and cache.num_layers == 3
    cache.crop(10)  # roll back, then re-feed: same logits again
    torch.testing.assert_close(model(x[:, 10:], cache=cache).logits, full[:, 10:], rtol=0, atol=1e-5)


def test_sliding_window_keeps_true_positions():
    """RoPE scores depend on relative positions only, so for one block a window of the last w
    cached tokens plus a new one gives what a fresh run on those w + 1 tokens gives."""
    model, x = tiny(n_layers=1), tokens(length=12)
    cache = KVCache()
    model(x[:, :10], cache=cache)
    cache.keep_last(4)
    assert (cache.length, cache.position) == (4, 10)
    windowed = model(x[:, 10:11], cache=cache).logits[:, -1]
    torch.testing.assert_close(windowed, model(x[:, 6:11]).logits[:, -1], rtol=0, atol=1e-5)


def test_num_layers_runs_only_the_first_blocks():
    model, x = tiny(n_layers=4), tokens()
    calls = []
    for name, module in [*((f"block{i}", b) for i, b in enumerate(model.layers)), ("norm", model.norm), ("head", model.output)]:
        module.register_forward_hook(lambda m, i, o, name=name: calls.append(name))
    full = model(x, output_hidden_states=True)
    assert calls == ["block0", "block1", "block2", "block3", "norm", "head"]
    calls.clear()
    part = model(x, num_layers=2, output_hidden_states=True)
    assert calls == ["block0", "block1"] and part.logits is None
    assert len(full.hidden_states) == 5 and len(part.hidden_states) == 3
    for a, b in zip(part.hidden_states, full.hidden_states):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(part.last_hidden, full.hidden_states[2], rtol=0, atol=0)
    assert model(x, num_layers=0).last_hidden.shape == (2, 24, 32)
    with pytest.raises(ValueError, match="num_layers=5"):
        model(x, num_layers=5)
    cache = KVCache()
    model(x[:, :4], cache=cache, num_layers=2)
    with pytest.raises(ValueError, match="holds 2 blocks"):
        model(x[:, 4:5], cache=cache)


def test_return_logits_false_skips_the_head():
    model, x = tiny(), tokens()
    assert model(x, return_logits=False).logits is None


def test_generate_greedy_matches_full_forward_argmax():
    model, prompt = tiny(), tokens(length=5)
    out = model.generate(prompt, 6, temperature=0)
    assert out.shape == (2, 11) and torch.equal(out[:, :5], prompt)
    seq = prompt
    for _ in range(6):
        seq = torch.cat([seq, model(seq).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, seq)
    assert torch.equal(model.generate(prompt, 6, top_k=1), seq)  # top-1 sampling is greedy
    sample = lambda: model.generate(prompt, 6, generator=torch.Generator().manual_seed(3))  # noqa: E731
    assert torch.equal(sample(), sample())


def _count(config: TotoConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in Toto(config).parameters())


def test_preset_parameter_counts_match_the_paper():
    counts = {name: _count(config) for name, config in PRESETS.items()}
    for name in ("base", "large", "1b"):
        assert abs(counts[name] / PAPER_PARAMS[name] - 1) < 0.10, (name, counts[name], PAPER_PARAMS[name])
    assert counts["nano"] < 10e6


def test_table15_family_follows_one_rule_and_matches_the_table_with_its_vocabulary():
    """a1..a6: SwiGLU width 14/3 * dim rounded up to 64 (encoder/presets.py). With the 1024-code
    VQGAN vocabulary Table 15 implies, within 2.5% of each count; with ours, pinned."""
    shapes = {"a1": (256, 12), "a2": (512, 16), "a3": (768, 20), "a4": (1024, 24), "a5": (1536, 28), "a6": (1792, 32)}
    for name, (dim, layers) in shapes.items():
        config = PRESETS[name]
        assert (config.dim, config.n_layers, config.n_heads) == (dim, layers, 16)
        assert config.hidden_dim % 64 == 0 and 0 <= config.hidden_dim - 14 * dim / 3 < 64, (name, config.hidden_dim)
        with_vqgan = _count(preset_config(name, vocab_size=VQGAN_VOCAB))
        assert abs(with_vqgan / PAPER_PARAMS[name] - 1) < 0.025, (name, with_vqgan, PAPER_PARAMS[name])
    ours = [round(_count(PRESETS[f"a{i}"]) / 1e5) / 10 for i in range(1, 7)]
    assert ours == [18.6, 85.0, 225.0, 471.4, 1214.4, 1882.8]


def test_presets_and_config_errors():
    assert preset_config("base", rope_base=5e4).rope_base == 5e4 and PRESETS["base"].rope_base == 1e4
    with pytest.raises(ValueError, match="unknown model preset 'huge'; valid: nano, s1"):
        preset_config("huge")
    with pytest.raises(ValueError, match="'dimm'"):
        preset_config("nano", dimm=3)
    config = TotoConfig(**TINY, rope_base=5e4)
    assert TotoConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown TotoConfig key.*'n_head'"):
        TotoConfig.from_dict({"n_head": 4})
    with pytest.raises(ValueError, match="dim=30 must split into n_heads=4"):
        TotoConfig(dim=30, n_heads=4)
    with pytest.raises(ValueError, match="heads of even size"):
        TotoConfig(dim=36, n_heads=4)  # head_dim 9: RoPE needs pairs
    with pytest.raises(ValueError, match="n_layers=0"):
        TotoConfig(n_layers=0)
    with pytest.raises(ValueError, match="rope_base"):
        TotoConfig(rope_base=-1.0)
    assert TotoConfig(dim=768).hidden_dim == 2048 and TotoConfig(dim=2048, n_heads=16).hidden_dim == 5632  # LLaMA's rule
    with pytest.raises(ValueError, match="integer dtype"):
        tiny()(torch.rand(2, 5))


def test_next_token_loss_ignores_pad_and_is_fp32_under_autocast():
    model, x = tiny(), tokens(length=10)
    x[0, 6:] = PAD  # a padded tail
    loss = next_token_loss(model, x)
    logits, targets = model(x[:, :-1]).logits, x[:, 1:]
    keep = targets != PAD
    manual = -logits.log_softmax(-1).gather(-1, targets[..., None])[..., 0][keep].mean()
    torch.testing.assert_close(loss, manual, rtol=1e-6, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = next_token_loss(model, x)
    assert low.dtype == torch.float32 and abs(low.item() - loss.item()) < 0.05


def test_fused_head_cross_entropy_gradients_match_the_plain_path():
    model, x = tiny(vocab_size=600), tokens(length=300, vocab=600)  # > one 256-row chunk
    x[1, 200:] = PAD
    params = list(model.parameters())
    logits = model(x[:, :-1]).logits
    plain = F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten(), ignore_index=PAD)
    fused = next_token_loss(model, x)
    torch.testing.assert_close(fused, plain, rtol=1e-6, atol=1e-6)
    for a, b in zip(torch.autograd.grad(fused, params), torch.autograd.grad(plain, params)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="targets need the head"):
        model(x[:, :-1], targets=x[:, 1:], num_layers=1)


def test_next_patch_loss_overfits_one_batch():
    torch.manual_seed(0)
    model = Toto(TotoConfig(dim=32, n_layers=2, n_heads=4, patch_dim=12))
    patches = torch.randn(2, 8, 12) * 3 + 1
    target = normalize_patches(patches)
    assert torch.allclose(target.mean(-1), torch.zeros(2, 8), atol=1e-5)
    assert torch.allclose(target.var(-1), torch.ones(2, 8), atol=1e-4)
    assert model(patches).logits.shape == (2, 8, 12)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = next_patch_loss(model, patches).item()
    for _ in range(60):
        loss = next_patch_loss(model, patches)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first, (first, loss.item())
    with pytest.raises(ValueError, match=r"float patches \(B, T, 12\)"):
        model(torch.zeros(2, 8, dtype=torch.long))


def test_load_toto_round_trip(tmp_path):
    from toto_robot.checkpoint import save_weights

    model, x = tiny(rope_base=5e4), tokens()
    save_weights(tmp_path, "toto", model.state_dict(), kind="toto", config=model.config.to_dict())
    loaded = load_toto(tmp_path)
    assert loaded.config == model.config and torch.equal(loaded(x).logits, model(x).logits)


def test_init_scales_residual_projections():
    model = Toto(TotoConfig(dim=256, n_layers=8, n_heads=4, vocab_size=64))
    assert abs(model.layers[0].attention.wq.weight.std().item() - 0.02) < 1e-3
    assert abs(model.layers[0].feed_forward.w2.weight.std().item() - 0.02 / math.sqrt(16)) < 1e-3
