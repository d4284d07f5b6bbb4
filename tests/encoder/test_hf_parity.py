"""Toto <-> Hugging Face LlamaForCausalLM: same logits both ways, and the export CLI."""
import pytest
import torch
import transformers  # a declared dependency (extra "pretrain"): missing it must fail, not skip

from encoder.hf import from_hf, from_hf_config, from_hf_state_dict, main, to_hf, to_hf_config
from encoder.model import Toto, TotoConfig
from toto_robot.checkpoint import save_weights

CONFIG = TotoConfig(dim=64, n_layers=3, n_heads=4, vocab_size=60, max_seq_len=64, rope_base=50000.0, norm_eps=1e-6)


def perturbed_toto() -> Toto:
    """Random weights everywhere, norms included, so a swapped or mis-sliced tensor shows."""
    torch.manual_seed(0)
    model = Toto(CONFIG)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def ids() -> torch.Tensor:
    return torch.randint(0, 60, (2, 48), generator=torch.Generator().manual_seed(1))


def test_toto_to_hf_same_logits_and_hidden_states():
    model, x = perturbed_toto(), ids()
    hf = to_hf(model).eval()
    ours = model(x, output_hidden_states=True)
    theirs = hf(input_ids=x, output_hidden_states=True)
    assert (ours.logits - theirs.logits).abs().max() <= 1e-4
    # HF's last entry is after the final norm; ours is the block output (spec), the rest agree
    for a, b in zip(ours.hidden_states[:-1], theirs.hidden_states[:-1]):
        assert (a - b).abs().max() <= 1e-4
    assert hf.config.rope_parameters["rope_theta"] == 50000.0 and hf.config.intermediate_size == CONFIG.hidden_dim


def test_hf_to_toto_same_logits():
    torch.manual_seed(2)
    hf = transformers.LlamaForCausalLM(to_hf_config(CONFIG)).eval()
    model = from_hf(hf)
    assert model.config == TotoConfig(**{**CONFIG.to_dict(), "ffn_hidden": CONFIG.hidden_dim})
    x = ids()
    assert (model(x).logits - hf(input_ids=x).logits).abs().max() <= 1e-4


def test_unsupported_conversions_are_clear_errors():
    with pytest.raises(ValueError, match="patch-mode"):
        to_hf_config(TotoConfig(dim=64, n_heads=4, n_layers=1, patch_dim=12))
    gqa = to_hf_config(CONFIG)
    gqa.num_key_value_heads = 2
    with pytest.raises(ValueError, match="grouped-query attention"):
        from_hf_config(gqa)
    with pytest.raises(ValueError, match="missing"):
        from_hf_state_dict({}, CONFIG)


def test_export_cli_writes_a_from_pretrained_folder(tmp_path, capsys):
    model, x = perturbed_toto(), ids()
    save_weights(tmp_path / "ckpt", "toto", model.state_dict(), kind="toto", config=CONFIG.to_dict())
    main(["export", str(tmp_path / "ckpt"), str(tmp_path / "hf")])
    assert "wrote" in capsys.readouterr().out
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert (hf(input_ids=x).logits - model(x).logits).abs().max() <= 1e-4
    save_weights(tmp_path / "other", "toto", {}, kind="fsq_tokenizer", config={})
    with pytest.raises(SystemExit, match="^error: .*expected 'toto'$"):  # one line, no traceback
        main(["export", str(tmp_path / "other"), str(tmp_path / "hf2")])
