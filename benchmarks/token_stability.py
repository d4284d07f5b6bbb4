"""Token stability of tokenizers and exports, side by side (issue 24; pretrain/token_stability.py).

On one held-out expert episode per task (seed 7001, 60 control steps, both cameras), rendered raw:
the flip rate of bit-identical 8 x 8 patches between consecutive steps (overall, per task and
camera), the flip rate of all patches at strides 1 and 4, the code agreement between a raw frame
and its stored version (the corpus's MP4 round trip: lossless by default, yuv420p for the earlier
corpus), and the reconstruction PSNR per embedded source. For an export (a folder with toto.json)
also its feature report (pretrain/token_stability.feature_report): the nearest-neighbour self-match
between consecutive frames and the linear read-out of a patch's place at every layer, and the
embedding cosine of FSQ codes one level apart (against random pairs). An export that reads patches
(objective=patch_dvae, the default) is measured on the codes it learned to predict: its run's tokenizer/.

    python benchmarks/token_stability.py                                   # runs/pretrain/encoder
    python benchmarks/token_stability.py runs/a/tokenizer runs/b/encoder --storage yuv420p
    python benchmarks/token_stability.py runs/pretrain/encoder --no-psnr   # skips rendering the corpus
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch/OpenMP load: 3-8x slower without it under load

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", default=["runs/pretrain/encoder"],
                        help="tokenizer folders (tokenizer.json) or exports (toto.json + tokenizer.json)")
    parser.add_argument("--storage", choices=("lossless", "yuv420p"), default="lossless",
                        help="the corpus storage whose round trip the agreement measures")
    parser.add_argument("--cache-dir", default="runs/cache", help="the embedded corpus (rendered there if missing) for PSNR")
    parser.add_argument("--no-psnr", action="store_true", help="skip the PSNR per source (no corpus needed)")
    parser.add_argument("--dtype", default="fp32", help="the export's precision for the self-match (auto|fp32|bf16)")
    return parser.parse_args(argv)


def column(path: str, args, frames_by_source) -> dict:
    """Every figure of one tokenizer or export, as {row label: text}."""
    from pretrain.token_stability import codes_of, feature_report, measure

    tokenizer = codes_of(path)
    result = measure(tokenizer, frames_by_source, lossless=args.storage == "lossless")
    rows = {"static flips": result["static_flip"], "  worst wrist view": result["wrist_static_flip"],
            "  still 7x7 context": result["static_context_flip"], "all flips, stride 1": result["flip_stride1"],
            "all flips, stride 4": result["flip_stride4"], f"raw vs {result['storage']} agreement": result["stored_agreement"]}
    rows.update({f"  static flips {name}": v["static_flip"] for name, v in result["videos"].items()})
    rows.update({f"PSNR {name} (dB)": db for name, db in result.get("psnr_db", {}).items()})
    if (Path(path) / "toto.json").is_file():  # the export's own report (the pipeline writes it beside the weights)
        report = feature_report(path, device="cpu", dtype=args.dtype)
        rows.update({f"self-match layer {n}": v for n, v in report["self_match"].items()})
        rows.update({f"place read-out layer {n}": v for n, v in report["position_readout"].items()})
        rows.update({"self-match raw pixels": report["self_match_pixels"], "place read-out raw pixels": report["position_readout_pixels"]})
        cos = report.get("code_neighbour_cosine")
        if cos:
            rows.update({"embedding cos, one level": cos["one_level"], "embedding cos, random": cos["random"]})
    return rows


def main(argv=None) -> None:
    args = parse_args(argv)
    for path in args.paths:
        if not Path(path).exists():
            sys.exit(f"error: {path} not found: give a tokenizer folder or an export (python pretrain/run.py makes both)")
    frames_by_source = None
    if not args.no_psnr:
        from pretrain.data.embedded import embedded_sources
        from pretrain.data.sources import DEFAULT_VAL_FRACTION
        from pretrain.token_stability import source_frames

        frames_by_source = source_frames(embedded_sources(args.cache_dir, progress=False), 128, DEFAULT_VAL_FRACTION)
    columns = [column(path, args, frames_by_source) for path in args.paths]
    labels = list(dict.fromkeys(label for c in columns for label in c))
    width = max(len(label) for label in labels) + 2
    print("".ljust(width) + "".join(f"{Path(p).parent.name + '/' + Path(p).name:>28}" for p in args.paths))
    for label in labels:
        cells = []
        for c in columns:
            value = c.get(label)
            cells.append("-" if value is None else f"{value:.1%}" if "PSNR" not in label and "cos" not in label
                         else f"{value:.3f}" if "cos" in label else f"{value:.1f}")
        print(label.ljust(width) + "".join(f"{cell:>28}" for cell in cells))


if __name__ == "__main__":
    main()
