"""The scaling study (paper section 4.9, Fig. 9): validation loss against training compute.

    python pretrain/run.py experiment=scaling                       # s1..s4 on the embedded corpus, this CPU
    python pretrain/run.py experiment=scaling 'scaling.sizes=[a1,a2,a3,a4,a5,a6]' data=paper_mix \\
        train.batch_tokens=1048576 ...                                # the paper's family, on GPUs (torchrun works too)

One tokenized corpus (the data, tokenizer and tokenize stages in `out`), then every size in
`scaling.sizes` trained from scratch in out/sizes/<size>/ on a matched budget: D =
tokens_per_param x N training tokens, N the size's matmul parameters (pretrain/sizing.py), so the
runs sit at one point of the tokens-per-parameter trade-off, as a compute-optimal family does.
Compute is counted as the paper reports it, in MACs: half the training FLOPs that
pretrain/sizing.py counts (6 N per token plus causal attention), C = flops_per_token x D / 2.
Then L(C) = a * C^b is fitted to each size's final validation loss (least squares in log-log)
and drawn with every size's validation curve and the paper's L(C) = 7.32 C^-0.0378 for reference
(its losses are over a 1024-code VQGAN vocabulary and its data, so only the slope compares).

Resumable: a finished size keeps its record (out/sizes/<size>/size.json) and is skipped; an
unfinished one resumes from its last checkpoint. A record made with another budget is refused.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from pretrain.config import RunConfig
from pretrain import distributed
from pretrain.metrics import read_jsonl
from pretrain.pipeline import model_config, read_index, run, shard_sets
from pretrain.sizing import flops_per_token, matmul_params
from pretrain.train import train
from toto_robot.io import atomic_write, save_figure

SIZES_DIR = "sizes"
RECORD_NAME = "size.json"
RESULT_NAME = "scaling.json"
PLOT_NAME = "scaling.png"
PAPER_FIT = (7.32, -0.0378)  # L(C) = 7.32 * C^-0.0378, C in MACs (paper section 4.9)


def fit_power_law(compute, loss) -> tuple[float, float]:
    """(a, b) of L = a * C^b, least squares on log L = log a + b log C (at least two points)."""
    c, losses = np.asarray(compute, dtype=float), np.asarray(loss, dtype=float)
    if len(c) < 2 or np.any(c <= 0) or np.any(losses <= 0) or len(np.unique(c)) < 2:
        raise ValueError("a power-law fit needs at least two distinct positive compute values and positive losses")
    b, log_a = np.polyfit(np.log(c), np.log(losses), 1)
    return float(math.exp(log_a)), float(b)


def size_plan(cfg: RunConfig, size: str, index: dict) -> dict:
    """The model and training settings of one size: its budget in tokens and steps."""
    s = cfg.scaling
    model = model_config(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, preset=size)), index)
    seq_len = index["seq_len"]
    n = matmul_params(model)
    rows_per_step = max(1, round(cfg.train.batch_tokens / seq_len))
    steps = max(s.min_steps, math.ceil(s.tokens_per_param * n / (rows_per_step * seq_len)))
    train = dataclasses.replace(cfg.train, steps=steps, batch_tokens=rows_per_step * seq_len,
                                warmup_steps=max(1, round(s.warmup_fraction * steps)),
                                val_every=max(1, steps // s.validations), ckpt_every=max(1, steps // 4))
    return {"size": size, "model": model, "train": train, "matmul_params": n,
            "macs_per_token": flops_per_token(model, seq_len) / 2}


def _record_path(cfg: RunConfig, size: str) -> Path:
    return Path(cfg.out) / SIZES_DIR / size / RECORD_NAME


def _finished(cfg: RunConfig, plan: dict) -> dict | None:
    """The record of a finished size with this plan, None if unfinished; another plan is refused."""
    path = _record_path(cfg, plan["size"])
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    planned = {"steps": plan["train"].steps, "batch_tokens": plan["train"].batch_tokens}
    if record["plan"] != planned:
        raise ValueError(f"{path.parent} was trained for {record['plan']}, not {planned} (another budget or batch): "
                         f"use another out, or delete it")
    return record


def train_size(cfg: RunConfig, plan: dict, index: dict, info) -> dict:
    """Train (or resume) one size in the study's group (`info`); rank 0 writes its record with its compute and
    validation curve."""
    out = _record_path(cfg, plan["size"]).parent
    train_sets, val_sets = shard_sets(cfg, index)
    summary = train(plan["model"], train_sets, val_sets, plan["train"], out, dist_info=info, frame_tokens=index["grid"] ** 2)
    curve = [(r["tokens_seen"] * plan["macs_per_token"], r["val_loss"]) for r in read_jsonl(out / "metrics.jsonl")
             if "val_loss" in r]
    record = {"size": plan["size"], "params": summary["params"], "matmul_params": plan["matmul_params"],
              "dim": plan["model"].dim, "n_layers": plan["model"].n_layers,
              "plan": {"steps": plan["train"].steps, "batch_tokens": plan["train"].batch_tokens},
              "steps": summary["steps"], "tokens": summary["tokens_seen"],
              "macs": summary["tokens_seen"] * plan["macs_per_token"], "val_loss": summary["final_val_loss"],
              "train_loss": summary["final_train_loss"], "curve": curve, "wall_time_s": summary["wall_time_s"],
              "precision": summary["precision"], "device": summary["device"], "world_size": summary["world_size"]}
    if info.is_main:
        with atomic_write(out / RECORD_NAME) as tmp:
            tmp.write_text(json.dumps(record, indent=1))
    return record


def run_scaling(cfg: RunConfig) -> dict:
    """Tokenize once, train every size (skipping finished ones), fit and plot: the study's result."""
    if len(cfg.scaling.sizes) < 2:
        raise ValueError(f"scaling.sizes={list(cfg.scaling.sizes)}: the study needs at least two model presets")
    if cfg.objective != "ar" or cfg.model.init_from:
        raise ValueError("the scaling study trains Toto (objective=ar) from scratch: drop objective/model.init_from")
    if cfg.scaling.tokens_per_param <= 0 or cfg.scaling.validations < 1:
        raise ValueError("scaling.tokens_per_param must be > 0 and scaling.validations >= 1")
    info = distributed.setup(cfg.device, cfg.dist_timeout_minutes)  # one group for every stage and size
    try:
        records = _run_sizes(cfg, info)
    except BaseException:
        distributed.teardown(info, meet=False)
        raise
    distributed.teardown(info)
    result = summarize(records)
    if info.is_main:
        with atomic_write(Path(cfg.out) / RESULT_NAME) as tmp:
            tmp.write_text(json.dumps(result, indent=1))
        result["plot"] = str(plot_scaling(result, Path(cfg.out) / PLOT_NAME))
    return result


def _run_sizes(cfg: RunConfig, info) -> list[dict]:
    from tqdm import tqdm


    run(cfg, stages=("data", "tokenizer", "tokenize"))
    index = read_index(cfg)
    if index.get("content", "tokens") != "tokens":
        raise ValueError("the scaling study trains on token ids: use tokenizer=fsq or dalle")
    plans = [size_plan(cfg, size, index) for size in cfg.scaling.sizes]  # unknown presets fail here, before any training
    records = []
    for plan in tqdm(plans, desc="scaling", unit="size", disable=not (cfg.train.progress and info.is_main)):
        records.append(_finished(cfg, plan) or train_size(cfg, plan, index, info))
    return records


def summarize(records: list[dict]) -> dict:
    """The fit over the sizes' final losses, and the paper's for comparison."""
    a, b = fit_power_law([r["macs"] for r in records], [r["val_loss"] for r in records])
    return {"fit": {"a": a, "b": b}, "paper_fit": {"a": PAPER_FIT[0], "b": PAPER_FIT[1]}, "sizes": records}


def plot_scaling(result: dict, path: Path) -> Path:
    """Fig. 9: each size's validation loss against compute, the final points, the fit and the paper's line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, r in enumerate(result["sizes"]):
        c, losses = zip(*r["curve"]) if r["curve"] else ((), ())
        ax.plot(c, losses, "-", lw=1, alpha=0.6, color=f"C{i}")
        ax.plot([r["macs"]], [r["val_loss"]], "o", color=f"C{i}",
                label=f"{r['size']} ({r['params'] / 1e6:.2g}M, {r['tokens'] / 1e6:.2g}M tokens)")
    finals = np.array([r["macs"] for r in result["sizes"]])
    grid = np.geomspace(finals.min() / 3, finals.max() * 3, 50)
    a, b = result["fit"]["a"], result["fit"]["b"]
    ax.plot(grid, a * grid**b, "k--", lw=1.2, label=f"fit: L = {a:.3g} C^{b:.4f}")
    pa, pb = result["paper_fit"]["a"], result["paper_fit"]["b"]
    ax.plot(grid, pa * grid**pb, ":", color="0.5", lw=1.2, label=f"paper: L = {pa} C^{pb} (VQGAN-1024, its data)")
    ax.set(xscale="log", yscale="log", xlabel="training compute C (MACs)", ylabel="validation loss (nats)",
           title="Toto scaling: validation loss against compute")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
