"""Probe the frozen encoder: `python -m encoder.probe` trains linear, attention and attention+MLP
probes on the features of every layer and reports accuracy vs layer (paper Fig. 4) and average vs
attention pooling at the best layer (paper Table 5).

    python -m encoder.probe                                    # embedded data: sklearn digits + sim robot clips
    python -m encoder.probe encoder=runs/other/encoder layers=[2,3] probes=[linear,attention]
    python -m encoder.probe image.source=/data/imagenet video.source=/data/k400/train.csv \
        video.val_csv=/data/k400/val.csv probe=paper dtype=bf16

Settings: encoder/probes/config.py (ProbeConfig) and encoder/conf/. Outputs in `out`
(runs/probe/<datasets>): results.json, accuracy_vs_layer.png, probe.log, features/ (the cache).
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (docs/design.md section 10)
if __name__ == "__main__" and not __package__:  # as a file, encoder/tokenizers/ would shadow HF's `tokenizers` package
    raise SystemExit("run it as `python -m encoder.probe` or `toto-probe`: as a file, encoder/tokenizers/ shadows `tokenizers`")

import hydra  # noqa: E402

from encoder.probes.config import ProbeConfig  # noqa: E402  (registers the schema and the run-dir resolver)
from encoder.probes.run import run_probes  # noqa: E402
from toto_robot.cli import bad_input_exits, conf_dir, hydra_entry, settings  # noqa: E402
from toto_robot.lock import run_lock  # noqa: E402
from pretrain.data.embedded import record_robot_videos  # noqa: E402


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


@hydra.main(version_base="1.3", config_path=conf_dir(__file__), config_name="probe")
def main(cfg) -> None:
    with bad_input_exits(NotImplementedError):
        config: ProbeConfig = settings(cfg)

        with run_lock(config.out):
            result = run_probes(config, render_robot_videos=record_robot_videos)
        report(result)
        print(f"results: {Path(config.out) / 'results.json'}, plot: {Path(config.out) / 'accuracy_vs_layer.png'}")


cli = hydra_entry(main)  # the console script's target (pyproject.toml)

if __name__ == "__main__":
    cli()
