"""Pre-train Toto: `python pretrain/run.py` runs every stage on the embedded defaults.

    python pretrain/run.py                                  # embedded corpus, stable FSQ tokenizer, nano, patches in and the next code out
    python pretrain/run.py objective=ar tokenizer=fsq       # the paper's next-token Toto on the wide FSQ recipe (-> runs/pretrain_ar)
    python pretrain/run.py stage=tokenize                   # one stage: data|tokenizer|tokenize|train|export
    python pretrain/run.py model=base data=paper_mix data.sources.0.path=/datasets/imagenet ...   # objective=ar, tokenizer=fsq
    torchrun --nproc_per_node=8 pretrain/run.py model=large train.strategy=fsdp ...
    python pretrain/run.py experiment=coarse_to_fine model=base model.init_from=runs/pretrain_ar/encoder
    python pretrain/run.py experiment=scaling               # the scaling study, s1..s4: pretrain/scaling.py

The default objective, patch_dvae, is what the representation study chose at this scale (docs/results.md, section 4);
the paper presets (model=base|large|1b|a1..a6) train the paper's objective=ar. Settings: pretrain/config.py
(RunConfig) and pretrain/conf/. Outputs in `out` (runs/pretrain; runs/pretrain_<objective> for another objective):
tokenizer/, tokens/, train/ (checkpoints, metrics.jsonl, loss.png, TensorBoard) and encoder/,
the frozen encoder later steps load. Every stage resumes where it stopped.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (docs/design.md section 10)

import hydra  # noqa: E402

from pretrain.config import RunConfig  # noqa: E402
from pretrain.pipeline import run  # noqa: E402
from toto_robot.cli import bad_input_exits, conf_dir, hydra_entry, settings  # noqa: E402
from toto_robot.lock import run_lock  # noqa: E402
from pretrain.scaling import run_scaling  # noqa: E402


def report(cfg: RunConfig, result: dict) -> None:
    """What was made and how to use it."""
    summary = result.get("train")
    if summary:
        print(f"trained {summary['steps']} steps, {summary['tokens_seen']:,} tokens: "
              f"train loss {summary['final_train_loss']:.3f}, val loss {summary['final_val_loss']:.3f}")
    if "encoder" in result:
        path = result["encoder"]
        print(f"frozen encoder: {path}\n"
              f"  use it:   import toto_robot; encoder = toto_robot.load_encoder('{path}', layer='mid')  # uint8 frames -> features\n"
              f"  probe it: python -m encoder.probe encoder={path}\n"
              f"  metrics:  {Path(cfg.out) / 'train'}/loss_curve.png, tensorboard --logdir {Path(cfg.out) / 'train'}")


def report_scaling(cfg: RunConfig, result: dict) -> None:
    """The family's table and fit, next to the paper's."""
    print(f"{'size':>6} {'params':>9} {'tokens':>9} {'compute (MACs)':>15} {'val loss':>9} {'minutes':>8}")
    for r in result["sizes"]:
        print(f"{r['size']:>6} {r['params'] / 1e6:8.2f}M {r['tokens'] / 1e6:8.2f}M {r['macs']:15.3g} {r['val_loss']:9.4f} "
              f"{r['wall_time_s'] / 60:8.1f}")
    fit, paper = result["fit"], result["paper_fit"]
    print(f"fit: L(C) = {fit['a']:.3f} * C^{fit['b']:.4f}   (paper: {paper['a']} * C^{paper['b']})")
    if "plot" in result:
        print(f"plot: {result['plot']}; table: {Path(cfg.out) / 'scaling.json'}")


@hydra.main(version_base="1.3", config_path=conf_dir(__file__), config_name="run")
def main(cfg) -> None:
    with bad_input_exits(NotImplementedError):
        config: RunConfig = settings(cfg)
        with run_lock(config.out, enabled=os.environ.get("RANK", "0") == "0" and not config.dry_run):  # rank 0 for the launch
            if config.scaling.sizes:
                report_scaling(config, run_scaling(config))
            else:
                report(config, run(config))


cli = hydra_entry(main)  # the console script's target (pyproject.toml)

if __name__ == "__main__":
    cli()
