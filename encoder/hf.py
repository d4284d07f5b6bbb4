"""Conversion between Toto and Hugging Face `LlamaForCausalLM`, and the export CLI.

Why: a checkpoint exported here loads in any Llama-aware tool (transformers, vLLM, llama.cpp
converters), and the HF model is the reference our parity test checks the math against. The
architectures are identical, so conversion renames tensors and nothing else:

    ours                                HF
    tok_embeddings / norm / output      model.embed_tokens / model.norm / lm_head
    layers.{i}.attention_norm           model.layers.{i}.input_layernorm
    layers.{i}.attention.wq|wk|wv|wo    model.layers.{i}.self_attn.q_proj|k_proj|v_proj|o_proj
    layers.{i}.ffn_norm                 model.layers.{i}.post_attention_layernorm
    layers.{i}.feed_forward.w1|w3|w2    model.layers.{i}.mlp.gate_proj|up_proj|down_proj

    python -m encoder.hf export <checkpoint_dir> <out_dir>
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from encoder import tokens
from encoder.model import Toto, TotoConfig
from toto_robot.checkpoint import load_weights

_TOP = {"tok_embeddings.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
_LAYER = {  # ours -> HF, inside layer i
    "attention_norm.weight": "input_layernorm.weight",
    "attention.wq.weight": "self_attn.q_proj.weight",
    "attention.wk.weight": "self_attn.k_proj.weight",
    "attention.wv.weight": "self_attn.v_proj.weight",
    "attention.wo.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "feed_forward.w1.weight": "mlp.gate_proj.weight",
    "feed_forward.w3.weight": "mlp.up_proj.weight",
    "feed_forward.w2.weight": "mlp.down_proj.weight",
}


def _names(config: TotoConfig) -> dict[str, str]:
    """Every tensor name of ours -> its HF name."""
    names = dict(_TOP)
    for i in range(config.n_layers):
        names.update({f"layers.{i}.{o}": f"model.layers.{i}.{h}" for o, h in _LAYER.items()})
    return names


def _token_mode(config: TotoConfig) -> None:
    if config.patch_dim is not None:
        raise ValueError("a patch-mode Toto (it reads pixel patches: objective=patch_dvae, the default, or tokenizer=patch) "
                         "has no Hugging Face Llama equivalent: export a run of objective=ar (runs/pretrain_ar/encoder)")


def to_hf_config(config: TotoConfig):
    """The `LlamaConfig` of the same network (token ids as in `encoder.tokens`)."""
    from transformers import LlamaConfig

    _token_mode(config)
    return LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.dim, intermediate_size=config.hidden_dim,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads, num_key_value_heads=config.n_heads,
        hidden_act="silu", max_position_embeddings=config.max_seq_len, rms_norm_eps=config.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": float(config.rope_base)},
        tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
        pad_token_id=tokens.PAD, bos_token_id=tokens.VIDEO_START, eos_token_id=tokens.END,
    )


def from_hf_config(hf_config) -> TotoConfig:
    """The `TotoConfig` of a `LlamaConfig`; ValueError for Llama features Toto does not have."""
    c = hf_config
    rope = dict(c.rope_parameters or {})
    unsupported = {
        "grouped-query attention": c.num_key_value_heads != c.num_attention_heads,
        f"activation {c.hidden_act!r}": c.hidden_act != "silu",
        "biases": c.attention_bias or c.mlp_bias,
        "tied embeddings": c.tie_word_embeddings,
        f"rope_type {rope.get('rope_type')!r}": rope.get("rope_type", "default") != "default",
        "head_dim != hidden_size / heads": c.head_dim * c.num_attention_heads != c.hidden_size,
    }
    found = [name for name, present in unsupported.items() if present]
    if found:
        raise ValueError(f"this Llama config uses {', '.join(found)}: not supported by Toto")
    return TotoConfig(
        dim=c.hidden_size, n_layers=c.num_hidden_layers, n_heads=c.num_attention_heads, vocab_size=c.vocab_size,
        ffn_hidden=c.intermediate_size, norm_eps=float(c.rms_norm_eps), rope_base=float(rope["rope_theta"]),
        max_seq_len=c.max_position_embeddings,
    )


def to_hf_state_dict(state_dict: dict, config: TotoConfig) -> dict:
    """Our weights under HF Llama names."""
    _token_mode(config)
    return {hf: state_dict[ours] for ours, hf in _names(config).items()}


def from_hf_state_dict(hf_state_dict: dict, config: TotoConfig) -> dict:
    """HF Llama weights under our names; ValueError on missing/extra keys."""
    _token_mode(config)
    names = _names(config)
    missing, extra = sorted(set(names.values()) - set(hf_state_dict)), sorted(set(hf_state_dict) - set(names.values()))
    if missing or extra:
        raise ValueError(f"not a Llama state dict of this config: missing {missing[:3]}, unexpected {extra[:3]}")
    return {ours: hf_state_dict[hf] for ours, hf in names.items()}


def to_hf(model: Toto):
    """A `LlamaForCausalLM` computing the same function as `model` (weights copied)."""
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM(to_hf_config(model.config))
    hf.load_state_dict(to_hf_state_dict(model.state_dict(), model.config), strict=True)
    return hf.to(next(model.parameters()).dtype)


def from_hf(hf_model) -> Toto:
    """A Toto computing the same function as a `LlamaForCausalLM` (weights copied)."""
    config = from_hf_config(hf_model.config)
    model = Toto(config)
    model.load_state_dict(from_hf_state_dict(hf_model.state_dict(), config), strict=True)
    return model.to(next(hf_model.parameters()).dtype)


def export(checkpoint_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write a `LlamaForCausalLM.from_pretrained`-loadable folder from a Toto checkpoint dir."""
    from safetensors.torch import save_file


    state, meta = load_weights(checkpoint_dir, "toto", kind="toto")
    config = TotoConfig.from_dict(meta["config"])
    hf_state = to_hf_state_dict(state, config)
    hf_config = to_hf_config(config)
    hf_config.dtype = str(next(iter(hf_state.values())).dtype).removeprefix("torch.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(hf_state, str(out / "model.safetensors"), metadata={"format": "pt"})
    hf_config.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m encoder.hf", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("export", help="Toto checkpoint dir (toto.safetensors + toto.json) -> HF Llama folder")
    cmd.add_argument("checkpoint_dir")
    cmd.add_argument("out_dir")
    args = parser.parse_args(argv)
    try:
        print(f"wrote {export(args.checkpoint_dir, args.out_dir)}")
    except (ValueError, FileNotFoundError) as error:  # CheckpointError is a ValueError: one line, no traceback
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
