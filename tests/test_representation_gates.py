"""scripts/representation_gates.py: the study's variants load from its config, and the gate table reads
what the runs wrote (loss by position, tracking results)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import representation_gates as gates  # noqa: E402


def test_the_study_config_names_every_variant_and_compare_reads_it():
    study = gates.study_config(None)
    assert {"toto_default", "toto_stable", "mae_nano"} <= set(study.variants)
    assert study.variants["toto_stable"] == ["objective=ar", "tokenizer=fsq_stable"] and study.pretrain_seeds == [0, 1, 2]
    # every Toto variant names its objective and tokenizer, so a change of `python pretrain/run.py`'s defaults
    # (sitting 10) cannot change what a variant that already ran means
    for name, overrides in study.variants.items():
        assert any(o.startswith("objective=") for o in overrides), name
        assert name == "mae_nano" or any(o.startswith("tokenizer=") for o in overrides), name
    assert set(study.encoders) - {"random", "state"} <= set(study.variants)


def test_gate_rows_read_loss_by_position_and_tracking(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "val_positions.json").write_text(json.dumps({"sets": {
        "robot": {"per_frame": [6.0, 5.0, 4.0]}, "clips": {"per_frame": [9.0, 9.0, 9.0]}}}))
    assert gates.loss_by_position(tmp_path) == {"first_frame": 6.0, "later_frames": 4.5, "drop": 1.5}
    results = {"encoders": {"a/encoder": {"best": {"JF": 0.415}, "best_layer": 2, "n_layers": 4}}}  # track.py's fractions
    row = gates.tracking_row(results, "a/encoder")
    assert row == {"track_jf": 0.415, "track_layer": "2/4"} and gates.tracking_row(results, "pixels") == {}
    text = gates.table({"a": {"static_flip": 0.25, "wrist_static_flip": 0.5, "loss_drop": 1.5, **row}}, 0.304)
    assert "| a | 25.0% (50.0%) |" in text and "41.5 (2/4)" in text and "floor): J&F 30.4" in text


def test_an_export_reported_before_the_place_read_out_is_measured_again(tmp_path, monkeypatch):
    import pretrain.token_stability as stability

    (tmp_path / "feature_stability.json").write_text(json.dumps({"self_match": {"1": 0.5, "2": 0.6}}))
    measured = []

    def report(encoder_dir, device="auto"):
        measured.append(encoder_dir)
        return {"self_match": {"1": 0.5, "2": 0.6}, "position_readout": {"1": 0.3, "2": 0.25}, "position_readout_pixels": 0.14,
                "position_chance": 1 / 256}

    monkeypatch.setattr(stability, "feature_report", report)
    features = gates.features_of(tmp_path)
    assert measured == [tmp_path] and gates.mid(features["position_readout"]) == 0.3  # block 1 of 2 is the mid one
    assert json.loads((tmp_path / "feature_stability.json").read_text()) == features
    gates.features_of(tmp_path)
    assert measured == [tmp_path]  # now current: read, not measured
    assert "| a | - (-) | - | 30.0% |" in gates.table({"a": {"place_mid": 0.3}}, None)
