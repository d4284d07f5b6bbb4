"""The scaling study (pretrain/scaling.py): the power-law fit, the matched budgets, resuming a family."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from encoder.model import TotoConfig
from encoder.presets import PRESETS
from pretrain import scaling
from pretrain.config import ScalingSettings
from pretrain.sizing import flops_per_token, matmul_params
from tests.pretrain.test_run import cli, tiny_config


def test_power_law_fit_recovers_the_coefficient_and_exponent():
    compute = np.geomspace(1e12, 1e18, 6)
    a, b = scaling.fit_power_law(compute, 7.32 * compute**-0.0378)
    assert a == pytest.approx(7.32, rel=1e-9) and b == pytest.approx(-0.0378, rel=1e-9)
    noise = np.exp(np.random.default_rng(0).normal(0, 0.002, compute.size))  # 0.2% scatter
    a, b = scaling.fit_power_law(compute, 3.1 * compute**-0.08 * noise)
    assert a == pytest.approx(3.1, rel=0.1) and b == pytest.approx(-0.08, abs=0.003)
    with pytest.raises(ValueError, match="two distinct positive"):
        scaling.fit_power_law([1e12, 1e12], [2.0, 1.9])


@pytest.fixture
def tiny_family(monkeypatch):
    monkeypatch.setitem(PRESETS, "t1", TotoConfig(dim=16, n_layers=1, n_heads=2, ffn_hidden=64))
    monkeypatch.setitem(PRESETS, "t2", TotoConfig(dim=32, n_layers=2, n_heads=2, ffn_hidden=128))
    return ["t1", "t2"]


def study_config(out: Path, sizes: list[str], tokens_per_param: float = 0.02):
    cfg = tiny_config(out, lr=3e-3)
    return dataclasses.replace(cfg, scaling=ScalingSettings(sizes=sizes, tokens_per_param=tokens_per_param, min_steps=2,
                                                            validations=2))


def test_an_interrupted_family_resumes_its_unfinished_sizes_and_fits(tiny_family, tmp_path, monkeypatch):
    import pretrain.scaling

    cfg = study_config(tmp_path, tiny_family)
    real_train, trained = pretrain.scaling.train, []

    def train(model_config, *args, **kwargs):
        trained.append(model_config.dim)
        if model_config.dim == 32 and trained.count(32) == 1:
            raise KeyboardInterrupt  # stopped during the second size
        return real_train(model_config, *args, **kwargs)

    monkeypatch.setattr(pretrain.scaling, "train", train)  # the name scaling.py calls
    with pytest.raises(KeyboardInterrupt):
        scaling.run_scaling(cfg)
    assert (tmp_path / "sizes/t1/size.json").is_file() and not (tmp_path / "sizes/t2/size.json").exists()

    result = scaling.run_scaling(cfg)
    assert trained == [16, 32, 32]  # t1 was not trained again
    t1, t2 = result["sizes"]
    index = json.loads((tmp_path / "tokens/index.json").read_text())
    for record, preset in ((t1, "t1"), (t2, "t2")):
        model = PRESETS[preset]
        n = matmul_params(dataclasses.replace(model, vocab_size=index["vocab_size"], max_seq_len=index["seq_len"]))
        assert record["matmul_params"] == n and record["tokens"] >= 0.02 * n
        assert record["tokens"] == record["steps"] * record["plan"]["batch_tokens"]
        per_token = flops_per_token(dataclasses.replace(model, vocab_size=index["vocab_size"],
                                                        max_seq_len=index["seq_len"]), index["seq_len"]) / 2
        assert record["macs"] == pytest.approx(record["tokens"] * per_token)
        assert len(record["curve"]) >= 2 and record["curve"][-1][1] == pytest.approx(record["val_loss"])
    assert t2["macs"] > t1["macs"]
    a, b = scaling.fit_power_law([t1["macs"], t2["macs"]], [t1["val_loss"], t2["val_loss"]])
    assert result["fit"] == pytest.approx({"a": a, "b": b})
    assert json.loads((tmp_path / "scaling.json").read_text())["fit"] == pytest.approx(result["fit"])
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"

    with pytest.raises(ValueError, match="another budget"):  # a finished size is never silently mixed with another budget
        scaling.run_scaling(study_config(tmp_path, tiny_family, tokens_per_param=0.05))


def test_bad_family_settings_are_refused_before_any_training(tiny_family, tmp_path):
    with pytest.raises(ValueError, match="at least two"):
        scaling.run_scaling(study_config(tmp_path, ["t1"]))
    with pytest.raises(ValueError, match="unknown model preset 'a9'"):
        scaling.run_scaling(study_config(tmp_path, ["t1", "a9"]))
    assert not (tmp_path / "sizes").exists()


def test_experiment_scaling_composes_the_cpu_family(tmp_path):
    import yaml

    composed = yaml.safe_load(cli("experiment=scaling", "--cfg", "job", "--resolve", cwd=tmp_path).stdout)
    assert composed["scaling"]["sizes"] == ["s1", "s2", "s3", "s4"] and composed["out"] == "runs/scaling"
    family = [PRESETS[s] for s in composed["scaling"]["sizes"]]
    assert [c.dim for c in family] == [64, 96, 128, 160] and [c.n_layers for c in family] == [2, 3, 4, 5]
    assert all(c.hidden_dim % 64 == 0 and 0 <= c.hidden_dim - 14 * c.dim / 3 < 64 for c in family)  # Table 15's rule
