"""What a probe run reports: results.json (per dataset, layer and probe) and the accuracy-vs-layer plot.

Chance is the accuracy of always answering the most frequent validation class (1/K for balanced
data), the floor any probe must clear. The best layer is the best layer of the `best_by` probe
(the attention probe, as in the paper's Fig. 4, where it sits near 50% depth), and Table 5's
comparison is average pooling (the linear probe) against attention pooling at that layer.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def best_of(accuracies: dict[int, float], n_layers: int) -> dict:
    """The best layer of one probe (the shallowest on ties: cheaper to run)."""
    layer = max(sorted(accuracies), key=lambda k: accuracies[k])
    return {"layer": layer, "depth_fraction": round(layer / n_layers, 4), "accuracy": accuracies[layer]}


def summarize(dataset, train, val, results: dict, layers: list[int], n_layers: int, best_by: str) -> dict:
    """The results.json entry of one dataset; `results` is {probe: {layer: ProbeResult}}."""
    counts = np.bincount(val.labels.numpy(), minlength=len(dataset.classes))
    accuracy = {p: {k: round(r.accuracy, 4) for k, r in by_layer.items()} for p, by_layer in results.items()}
    best_probe = best_by if best_by in results else next(iter(results))
    best = best_of(accuracy[best_probe], n_layers)
    pooling = None
    if "linear" in accuracy and "attention" in accuracy:
        avg, attn = accuracy["linear"][best["layer"]], accuracy["attention"][best["layer"]]
        pooling = {"layer": best["layer"], "average": avg, "attention": attn, "attention_gain": round(attn - avg, 4)}
    return {
        "kind": dataset.kind,
        "classes": dataset.classes,
        "n_train": len(train.labels),
        "n_val": len(val.labels),
        "frames": dataset.frames,
        "skipped": {"train": train.skipped.as_dict(), "val": val.skipped.as_dict()},
        "chance": round(float(counts.max() / counts.sum()), 4),
        "layers": layers,
        "accuracy": {p: {str(k): v for k, v in by_layer.items()} for p, by_layer in accuracy.items()},
        "train_accuracy": {p: {str(k): round(r.train_accuracy, 4) for k, r in by_layer.items()} for p, by_layer in results.items()},
        "final_train_loss": {p: {str(k): round(r.losses[-1], 4) for k, r in by_layer.items()} for p, by_layer in results.items()},
        "best_per_probe": {p: best_of(by_layer, n_layers) for p, by_layer in accuracy.items()},
        "best_by": best_probe,
        "best_layer": best["layer"],
        "best_layer_fraction": best["depth_fraction"],
        "best_accuracy": best["accuracy"],
        "pooling_at_best_layer": pooling,
        "info": dataset.info,
        "extract_seconds": round(train.seconds + val.seconds, 1),
        "probe_seconds": round(sum(r.seconds for by_layer in results.values() for r in by_layer.values()), 1),
    }


def plot(datasets: dict, n_layers: int, path: Path) -> Path:
    """accuracy_vs_layer.png: one panel per dataset, one line per probe, chance dashed (paper Fig. 4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, (name, summary) in zip(axes[0], datasets.items()):
        for probe, by_layer in summary["accuracy"].items():
            layers = sorted(int(k) for k in by_layer)
            ax.plot(layers, [100 * by_layer[str(k)] for k in layers], marker="o", label=probe)
        ax.axhline(100 * summary["chance"], color="grey", linestyle="--", label="chance")
        ax.axvline(summary["best_layer"], color="grey", linestyle=":", linewidth=1)
        ax.set(title=f"{name} ({summary['n_val']} val {'clips' if summary['kind'] == 'video' else 'images'})",
               xlabel=f"layer (of {n_layers})", ylabel="val top-1 accuracy (%)", ylim=(0, 102))
        ax.set_xticks(range(1, n_layers + 1) if n_layers <= 24 else summary["layers"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
