"""Track objects by label propagation through a frozen encoder's patch features (paper section 4.5,
Table 10; Jabri et al. 2020's protocol): J, F and J&F for every layer, with a plot and overlay videos.

    python -m encoder.track                                                 # the nano on the embedded sim set
    python -m encoder.track 'encoders=[runs/pretrain/encoder,runs/pretrain_mae/encoder]'   # Toto vs MAE
    python -m encoder.track data.root=/data/DAVIS 'layers=[mid]' propagation.topk=5     # DAVIS-2017 val

Settings: encoder/tracking/config.py (TrackConfig; propagation: encoder/tracking/propagate.py).
Outputs in `out` (runs/track): results.json, jf_vs_layer.png, overlays/*.mp4 (ground truth left,
propagated masks right). The embedded set is rendered once into data.cache_dir (sim/segmentation.py).
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (docs/design.md section 10)
if __name__ == "__main__" and not __package__:  # as a file, encoder/tokenizers/ would shadow HF's `tokenizers` package
    raise SystemExit("run it as `python -m encoder.track` or `toto-track`: as a file, encoder/tokenizers/ shadows `tokenizers`")

import hydra  # noqa: E402

from encoder.tracking.config import TrackConfig  # noqa: E402  (registers the schema)
from encoder.tracking.run import run_tracking  # noqa: E402
from toto_robot.cli import bad_input_exits, conf_dir, hydra_entry, settings  # noqa: E402
from toto_robot.lock import run_lock  # noqa: E402


def report(result: dict) -> None:
    """One line per encoder: its best layer, the depth there, and J&F, J, F."""
    floor = result["copy_first_frame"]
    print(f"first mask repeated (no tracking): J&F {100 * floor['JF']:.1f}  J {100 * floor['J']:.1f}  F {100 * floor['F']:.1f}")
    for path, r in result["encoders"].items():
        best = r["best"]
        print(f"{path} ({r['kind']}): best layer {r['best_layer']}/{r['n_layers']} ({100 * r['best_depth']:.0f}% depth) "
              f"J&F {100 * best['JF']:.1f}  J {100 * best['J']:.1f}  F {100 * best['F']:.1f}")
    for video, counts in result["data"]["unknown_indices"].items():
        print(f"{video}: {counts['pixels']} annotation pixels in {counts['frames']} frames hold indices "
              "that are not objects of the first frame (scored as background)")


@hydra.main(version_base="1.3", config_path=conf_dir(__file__), config_name="track")
def main(cfg) -> None:
    with bad_input_exits(NotImplementedError):
        config: TrackConfig = settings(cfg)
        from sim.segmentation import write_mask_set  # the entry point wires sim's mask renderer in

        with run_lock(config.out):
            result = run_tracking(config, make_sim_set=write_mask_set)
        report(result)
        print(f"results: {Path(config.out) / 'results.json'}, plot: {result['plot']}, overlays: {Path(config.out) / 'overlays'}")


cli = hydra_entry(main)  # the console script's target (pyproject.toml)

if __name__ == "__main__":
    cli()
