"""Success statistics and curves of policy runs: Wilson intervals and success-vs-env-steps plots.

Evaluation numbers are small binomial samples (16-50 robot episodes), so every rate is reported
with a Wilson 95% interval; the curves are the paper's Fig. 6 (success vs env steps). Pure
functions of the numbers: the entry points in sim/ (and later real/) read their run files and
call these.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from toto_robot.io import atomic_write


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial rate: unlike p +- z*se it stays inside [0, 1] and is
    not degenerate at 0/n or n/n, which small robot evaluations hit often."""
    if n < 1:
        raise ValueError("no episodes")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def runs_interval(rates: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """Student-t interval of the mean success over runs (one rate per run; None below two runs). Why beside
    Wilson's: Wilson counts every episode as independent, but runs from different pre-training seeds differ by
    more than their episodes would (an MAE on kuka_pick: 18, 0 and 6 of 30), and this interval sees that."""
    if len(rates) < 2:
        return None
    from scipy.stats import t  # (lazy: scipy comes with scikit-image)

    mean, sd = float(np.mean(rates)), float(np.std(rates, ddof=1))
    half = float(t.ppf(0.5 + level / 2, len(rates) - 1)) * sd / math.sqrt(len(rates))
    return max(0.0, mean - half), min(1.0, mean + half)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt


    fig.tight_layout()
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_success(path: Path, stats: list[dict], title: str) -> None:
    """Success rate vs env steps: the pure student's (eval_success_rate) when evaluated, and the
    executed beta-mixture's rollouts (success_rate), which round 0 shows as the expert's."""
    plt = _pyplot()
    steps = [row["env_steps"] for row in stats]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, label, style in (("eval_success_rate", "student (beta=0)", "o-"), ("success_rate", "rollouts (beta mixture)", "x--")):
        points = [(s, row[key]) for s, row in zip(steps, stats) if row.get(key) is not None]
        if points:
            ax.plot(*zip(*points), style, label=label)
    ax.set(xlabel="env steps", ylabel="success rate", ylim=(-0.02, 1.02), title=title)
    ax.grid(alpha=0.3)
    if ax.get_lines():
        ax.legend(loc="best")
    _save(fig, path)


def plot_comparison(path: Path, rows: dict[str, dict[str, dict[str, list[list[tuple[int, float]]]]]]) -> None:
    """Student success vs env steps: a row per pooling, a panel per task, a line per encoder; `rows[pool][task][encoder]`
    holds one curve [(env_steps, success), ...] per seed, drawn as the mean over seeds with a min..max band."""
    plt = _pyplot()
    tasks = list(dict.fromkeys(task for panels in rows.values() for task in panels))
    names = sorted({encoder for panels in rows.values() for lines in panels.values() for encoder in lines})
    colour = {encoder: f"C{i % 10}" for i, encoder in enumerate(names)}  # one colour per encoder in every row
    fig, axes = plt.subplots(len(rows), len(tasks), figsize=(4.2 * len(tasks), 3.4 * len(rows)), squeeze=False)
    for r, (pool, panels) in enumerate(rows.items()):
        for ax, task in zip(axes[r], tasks):
            for encoder, curves in panels.get(task, {}).items():
                length = min(len(c) for c in curves)
                if not length:
                    continue
                steps = np.array([x for x, _ in curves[0][:length]])
                rates = np.array([[y for _, y in c[:length]] for c in curves])
                ax.plot(steps, rates.mean(0), "o-", label=encoder, markersize=3, color=colour[encoder])
                if len(curves) > 1:
                    ax.fill_between(steps, rates.min(0), rates.max(0), color=colour[encoder], alpha=0.2)
            ax.set(title=task if r == 0 else "", xlabel="env steps" if r == len(rows) - 1 else "", ylim=(-0.02, 1.02))
            ax.grid(alpha=0.3)
        axes[r][0].set_ylabel(f"{pool}: student success" if len(rows) > 1 else "student success rate")
        axes[r][0].legend(loc="best", fontsize=7)
    _save(fig, path)


def plot_layers(path: Path, panels: dict[str, dict[str, list[tuple]]]) -> None:
    """Final success vs the layer the features are read at (the paper's Fig. 8, robotics): a panel per
    task, a line per encoder; `panels[task][line]` holds (layer, success, ci_low, ci_high) points,
    drawn with their Wilson intervals. Layers are categories in the order given ("mid", 0.25, 3 ...)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (task, lines) in zip(axes[0], panels.items()):
        for line, points in lines.items():
            layers = [str(p[0]) for p in points]
            rates, low, high = (np.array([p[i] for p in points]) for i in (1, 2, 3))
            ax.errorbar(layers, rates, yerr=[rates - low, high - rates], fmt="o-", capsize=3, label=line, markersize=3)
        ax.set(title=task, xlabel="layer read (depth fraction or block)", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out success rate")
    axes[0][0].legend(loc="best")
    _save(fig, path)


def plot_final(path: Path, summary: dict, layer) -> None:
    """Final held-out success at one layer: a panel per pooling, the tasks (and all of them pooled) along x, a marker
    per encoder with its Wilson 95% interval and a faint dot per run (pre-training and policy seeds), so who wins
    where, by how much and how far the seeds spread is read at a glance. The state encoder (no pool) is in every panel."""
    plt = _pyplot()
    rows = [r for r in summary["runs"] + summary["pooled_over_tasks"] if r["encoder"] == "state" or r["layer"] == str(layer)]
    pools = list(dict.fromkeys(r["pool"] for r in rows if r["encoder"] != "state")) or ["-"]
    tasks = list(dict.fromkeys(r["task"] for r in summary["runs"]))
    tasks += ["all"] if len(tasks) > 1 else []
    names = list(dict.fromkeys(r["encoder"] for r in rows))
    colour = {encoder: f"C{i % 10}" for i, encoder in enumerate(sorted(names))}
    width = 0.8 / max(len(names), 1)
    fig, axes = plt.subplots(len(pools), 1, figsize=(1.6 + 1.5 * len(tasks) * max(1, len(names) / 4), 3.0 * len(pools)),
                             squeeze=False)
    for ax, pool in zip(axes[:, 0], pools):
        for i, encoder in enumerate(names):
            offset = (i - (len(names) - 1) / 2) * width
            for j, task in enumerate(tasks):
                row = next((r for r in rows if r["encoder"] == encoder and r["task"] == task
                            and r["pool"] in (pool, "-")), None)
                if row is None:
                    continue
                low, high = row["ci95"]
                ax.errorbar(j + offset, row["success_rate"], yerr=[[row["success_rate"] - low], [high - row["success_rate"]]],
                            fmt="o", color=colour[encoder], capsize=2, markersize=4, label=encoder if j == 0 else None)
                ax.plot([j + offset] * len(row["run_rates"]), row["run_rates"], ".", color=colour[encoder], alpha=0.3,
                        markersize=3)
        ax.set_xticks(range(len(tasks)), [("all tasks" if t == "all" else t) for t in tasks])
        ax.set(ylim=(-0.02, 1.02), ylabel=f"{pool}: held-out success" if pool != "-" else "held-out success")
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=8, ncol=min(len(names), 6), frameon=False)
    _save(fig, path)
