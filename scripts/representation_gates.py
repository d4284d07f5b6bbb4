"""The cheap gates before any policy study (issue 24): pre-train each variant, then measure what
takes minutes, not hours, and print one table.

The variants are the study's (sim/conf/representation_study.yaml). Each is pre-trained as the policy
study does it (sim/compare.ensure_export: `python pretrain/run.py <overrides> train.seed=<seed>
tokenizer.train.seed=<seed>` into <out>/exports/<variant>_p<seed>, resumed or reused, so the study
reuses these exports), then `python -m encoder.track` runs on every export beside raw pixels. Gates:
token stability of its tokenizer (still patches that flip, worst wrist view), the export's
nearest-neighbour self-match between consecutive held-out frames (best layer), the linear read-out
of a patch's place from its feature (the layer policies read; what avg and attn pooling can use) and the
embedding cosine of FSQ codes one level apart, the validation loss by position (the paper's
Fig. 10: loss on the first frame of a robot clip against the mean of the later ones: a model that
uses its context predicts later frames better), and tracking J&F at its best layer.

    python scripts/representation_gates.py                      # every variant of the study, seed 0
    python scripts/representation_gates.py --variants toto_default toto_fsqemb --seed 1
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from sim.compare import ensure_export, run_step
from toto_robot.cli import bad_input_exits

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "sim" / "conf" / "representation_study.yaml"  # the variants, shared with the policy study


def study_config(out: str | None):
    """The study's CompareConfig (its variants and out), as `python sim/compare.py --config-name representation_study` reads it."""
    from omegaconf import OmegaConf

    from sim.compare import CompareConfig

    values = OmegaConf.to_container(OmegaConf.load(STUDY))
    values = {k: v for k, v in values.items() if k not in ("defaults", "hydra")}
    if out:
        values["out"] = out
    return CompareConfig(**values)


def loss_by_position(folder: Path) -> dict:
    """Robot clips' validation loss on frame 1 and the mean over frames 2..T (Fig. 10's drop)."""
    path = folder / "train" / "val_positions.json"
    if not path.is_file():
        return {}
    sets = json.loads(path.read_text())["sets"]
    frames = next((v["per_frame"] for k, v in sets.items() if "robot" in k and v.get("per_frame")), None)
    if not frames:
        return {}
    later = sum(frames[1:]) / len(frames[1:])
    return {"first_frame": round(frames[0], 3), "later_frames": round(later, 3), "drop": round(frames[0] - later, 3)}


def track(encoders: list[Path], out: Path) -> dict:
    """encoder/track.py's results over these encoders and raw pixels (one folder per set of encoders)."""
    listed = ",".join([*map(str, encoders), "pixels"])
    folder = out / ("track_" + "_".join(sorted(p.parent.name for p in encoders)))
    run_step("encoder.track", [f"encoders=[{listed}]", f"out={folder}", "overlays=0", "progress=false"], log=out / "track.log")
    return json.loads((folder / "results.json").read_text())


def features_of(encoder: Path) -> dict:
    """The export's feature report (pretrain/token_stability.py); one written before the place read-out
    (and its raw-pixel reference) existed is measured again and rewritten."""
    from pretrain.token_stability import FEATURE_REPORT, feature_report
    from toto_robot.io import atomic_write

    path = encoder / FEATURE_REPORT
    features = json.loads(path.read_text()) if path.is_file() else {}
    if features and "position_readout_pixels" not in features:
        features = feature_report(encoder)
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(features, indent=1))
    return features


def mid(values: dict):
    """The value at the layer policies read ("mid": n_layers // 2) of a {layer: value} report."""
    return values[str(len(values) // 2)] if values else None


def main(argv=None) -> None:
    with bad_input_exits():  # a failed child is one line naming its cause and log (sim.compare.run_step)
        gates(argv)


def gates(argv=None) -> None:

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="*", default=None, help="names in the study's variants (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="pre-training seed (tokenizer and transformer)")
    parser.add_argument("--out", default=None, help="the study's out (default: the study config's)")
    args = parser.parse_args(argv)
    study = study_config(args.out)
    names = args.variants or list(study.variants)
    unknown = sorted(set(names) - set(study.variants))
    if unknown:
        parser.error(f"unknown variants {unknown}; the study has {', '.join(study.variants)}")
    exports = {name: ensure_export(study, name, args.seed) for name in names}
    out = Path(study.out) / "gates" / f"seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    tracking = track(list(exports.values()), out)
    rows, reports = {}, {}
    for name, encoder in exports.items():
        folder = encoder.parent
        metrics = folder / "tokenizer" / "metrics.json"
        stability = json.loads(metrics.read_text()).get("stability", {}) if metrics.is_file() else {}
        features = reports[name] = features_of(encoder)
        matches = features.get("self_match", {})
        rows[name] = {"static_flip": stability.get("static_flip"), "wrist_static_flip": stability.get("wrist_static_flip"),
                      "self_match_best": max(matches.values()) if matches else None,
                      "place_mid": mid(features.get("position_readout", {})),
                      "code_cosine": (features.get("code_neighbour_cosine") or {}).get("one_level"),
                      **{f"loss_{k}": v for k, v in loss_by_position(folder).items()}, **tracking_row(tracking, str(encoder))}
    pixel_places = [r["position_readout_pixels"] for r in reports.values() if "position_readout_pixels" in r]
    rows["pixels"] = {**tracking_row(tracking, "pixels"), "place_mid": pixel_places[0] if pixel_places else None}
    floor = tracking["copy_first_frame"]["JF"]
    saved = out / "gates.json"  # rows of earlier runs on other variants are kept: one table for the seed
    rows = {**(json.loads(saved.read_text())["rows"] if saved.is_file() else {}), **rows}
    saved.write_text(json.dumps({"rows": rows, "floor_jf": floor, "seed": args.seed}, indent=1))
    text = table(rows, floor)
    (out / "gates.md").write_text(text + "\n")
    print(text)


def tracking_row(results: dict, key: str) -> dict:
    encoder = results.get("encoders", {}).get(key)
    if not encoder:
        return {}
    return {"track_jf": encoder["best"]["JF"], "track_layer": f"{encoder['best_layer']}/{encoder['n_layers']}"}


def table(rows: dict, floor) -> str:
    def cell(value, pct=False, digits=3):
        return "-" if value is None else f"{value:.1%}" if pct else f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| variant | still-patch flips (worst wrist) | self-match (best layer) | place read-out (mid) | code cos one level | "
             "loss frame 1 | loss frames 2+ | drop | tracking J&F (layer) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {cell(r.get('static_flip'), True)} ({cell(r.get('wrist_static_flip'), True)}) | "
                     f"{cell(r.get('self_match_best'), True)} | {cell(r.get('place_mid'), True)} | {cell(r.get('code_cosine'))} | "
                     f"{cell(r.get('loss_first_frame'))} | "
                     f"{cell(r.get('loss_later_frames'))} | {cell(r.get('loss_drop'))} | "
                     f"{cell(None if r.get('track_jf') is None else 100 * r['track_jf'], digits=1)} ({cell(r.get('track_layer'))}) |")
    if floor is not None:
        lines.append(f"\nFirst mask repeated (the floor): J&F {100 * floor:.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
