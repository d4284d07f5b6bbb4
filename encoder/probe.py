"""Probe the frozen encoder: `python encoder/probe.py` trains linear, attention and attention+MLP
probes on the features of every layer and reports accuracy vs layer (paper Fig. 4) and average vs
attention pooling at the best layer (paper Table 5).

    python encoder/probe.py                                    # embedded data: sklearn digits + sim robot clips
    python encoder/probe.py encoder=runs/other/encoder layers=[2,3] probes=[linear,attention]
    python encoder/probe.py image.source=/data/imagenet video.source=/data/k400/train.csv \
        video.val_csv=/data/k400/val.csv probe=paper dtype=bf16

Settings: encoder/probes/config.py (ProbeConfig) and encoder/conf/. Outputs in `out`
(runs/probe/<datasets>): results.json, accuracy_vs_layer.png, probe.log, features/ (the cache).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (docs/design.md section 10)
ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] == str(Path(__file__).resolve().parent):  # run as a script: import from the checkout root,
    sys.path[0] = str(ROOT)  # not from encoder/ (whose tokenizers/ would shadow the `tokenizers` package)

import hydra  # noqa: E402

from encoder.probes.config import ProbeConfig  # noqa: E402  (registers the schema and the run-dir resolver)
from encoder.probes.run import run_probes  # noqa: E402
from toto_robot.cli import bad_input_exits, refuse_file_as_out, settings  # noqa: E402
from toto_robot.lock import run_lock  # noqa: E402


def report(result: dict) -> None:
    """One line per dataset: best layer, its accuracy, and Table 5's pooling comparison."""
    for name, summary in result["datasets"].items():
        line = (f"{name}: best layer {summary['best_layer']}/{result['n_layers']} "
                f"({100 * summary['best_layer_fraction']:.0f}% depth) {summary['best_by']} "
                f"{100 * summary['best_accuracy']:.1f}% (chance {100 * summary['chance']:.1f}%)")
        pooling = summary["pooling_at_best_layer"]
        if pooling:
            line += f"; avg pool {100 * pooling['average']:.1f}% vs attention pool {100 * pooling['attention']:.1f}%"
        print(line)


@hydra.main(version_base="1.3", config_path="conf", config_name="probe")
def main(cfg) -> None:
    with bad_input_exits(NotImplementedError):
        config: ProbeConfig = settings(cfg)
        from pretrain.data.embedded import record_robot_videos  # the entry point wires sim's renderer in

        with run_lock(config.out):
            result = run_probes(config, render_robot_videos=record_robot_videos)
        report(result)
        print(f"results: {Path(config.out) / 'results.json'}, plot: {Path(config.out) / 'accuracy_vs_layer.png'}")


if __name__ == "__main__":
    refuse_file_as_out()
    main()
