"""A study's summary from its cells' records: success pooled over seeds (and over tasks) with two intervals, the
curves of compare.png and the points of layers.png. Apart from sim/compare.py, which runs the cells, because a
summary reads records alone (sim/study_records.py): a study in progress, or one whose folders are gone, is summarized
the same way.
"""
from __future__ import annotations

import json
from pathlib import Path

from policies.curves import runs_interval, wilson_interval
from sim.policy_config import EVAL_SEED, seed_suffix
from toto_robot.io import atomic_write


def _row(key: dict) -> dict:
    return {**key, "seeds": [], "successes": 0, "episodes": 0, "env_steps": 0, "train_seconds": [], "run_rates": [],
            "run_successes": []}


def summarize(out: Path, done: dict, seed: int = EVAL_SEED, pooled_seeds=None, note: str = "", tasks: int | None = None) -> dict:
    """Pool every (task, encoder, pool, layer)'s evaluations (from episode seed `seed`) over seeds, and every
    encoder's over tasks (the cells of `pooled_seeds` only, if given, so that every task weighs alike), from the
    cells' records (`done`: cell -> record); write summary.json and summary.md (summary_seed<seed>.* for another
    seed), headed by `note` (e.g. how many cells are in) when given. A row pooled over fewer than the study's
    `tasks` (a study in progress) is labelled "all (k of n tasks)", and final.png leaves it out: set beside a row
    over every task, it would compare different tasks."""
    rows, pooled = {}, {}
    for cell, record in done.items():
        if str(seed) not in record["evaluations"]:
            continue
        result, steps, seconds = record["evaluations"][str(seed)], record["env_steps"], record.get("train_seconds")
        key = {"task": cell.task, "encoder": cell.encoder, "pool": cell.pool, "layer": cell.layer}
        for table, group in ((rows, cell.group), (pooled, cell.group[1:])):
            if table is pooled and pooled_seeds is not None and cell.seed not in pooled_seeds:
                continue
            row = table.setdefault(group, _row(key if table is rows else {**key, "task": "all"}))
            row["seeds"].append(cell.seed if cell.pretrain_seed is None else f"p{cell.pretrain_seed}s{cell.seed}")
            row["successes"] += result["successes"]
            row["episodes"] += result["episodes"]
            row["run_rates"].append(result["successes"] / result["episodes"])
            row["run_successes"].append(result["successes"])
            row["env_steps"] = steps
            if seconds:
                row["train_seconds"].append(seconds)
    for group, row in pooled.items():
        covered = len({r["task"] for key, r in rows.items() if key[1:] == group})
        if tasks is not None and covered < tasks:
            row["task"] = f"all ({covered} of {tasks} tasks)"
    for row in [*rows.values(), *pooled.values()]:
        row["success_rate"] = row["successes"] / row["episodes"]
        row["ci95"] = list(wilson_interval(row["successes"], row["episodes"]))
        runs = runs_interval(row["run_rates"])  # over runs: sees seed-to-seed spread that Wilson's cannot
        row["ci95_runs"] = list(runs) if runs else None
        times = row.pop("train_seconds")
        row["train_minutes"] = sum(times) / len(times) / 60 if times else None
        row["env_steps_per_s"] = row["env_steps"] / (sum(times) / len(times)) if times else None
    lines = ["| task | encoder | pool | layer | env steps | success | 95% CI (episodes) | 95% CI (runs) | runs (successes by seed) | "
             "train min/run | env steps/s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    by_run = {id(row): len(row["run_rates"]) for row in pooled.values()}  # over tasks: the count; a task's row: each run
    for row in [*rows.values(), *(pooled.values() if len(set(c.task for c in done)) > 1 else [])]:
        low, high = row["ci95"]
        cost = (f"{row['train_minutes']:.1f} | {row['env_steps_per_s']:.0f}" if row["train_minutes"] else "- | -")
        over_runs = "{:.0%}-{:.0%}".format(*row["ci95_runs"]) if row["ci95_runs"] else "-"
        lines.append(f"| {row['task']} | {row['encoder']} | {row['pool']} | {row['layer']} | {row['env_steps']:,} | "
                     f"{row['successes']}/{row['episodes']} = {row['success_rate']:.0%} | {low:.0%}-{high:.0%} | {over_runs} | "
                     f"{by_run.get(id(row)) or runs_listed(row)} | {cost} |")
    if note:
        lines = [f"{note}.", "", *lines]
    summary = {"runs": list(rows.values()), "pooled_over_tasks": list(pooled.values())}
    stem = f"summary{seed_suffix(seed)}"
    with atomic_write(out / f"{stem}.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    with atomic_write(out / f"{stem}.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(("" if seed == EVAL_SEED else f"On fresh episodes (seed {seed}):\n") + "\n".join(lines))
    return summary


def runs_listed(row: dict) -> str:
    """Each run's successes by its seed ("p0s0 5, p1s0 10"; a plain seed without pre-training seeds)."""
    return ", ".join(f"{seed if isinstance(seed, str) else f's{seed}'} {k}" for seed, k in zip(row["seeds"], row["run_successes"]))


def curves(done: dict, layer) -> dict:
    """{pool: {task: {encoder: [per-seed [(env_steps, student success), ...]]}}} from the cells' records (the
    student's success after every round), at one layer; the state encoder (no pool) is drawn in every pool's row."""
    pools = list(dict.fromkeys(c.pool for c in done if c.encoder != "state")) or ["-"]
    rows = {pool: {} for pool in pools}
    for cell, record in done.items():
        if cell.encoder != "state" and cell.layer != str(layer):
            continue
        rows_of_cell = pools if cell.encoder == "state" else [cell.pool]
        curve = [tuple(point) for point in record["curve"]]
        for pool in rows_of_cell:
            rows[pool].setdefault(cell.task, {}).setdefault(cell.encoder, []).append(curve)
    return rows


def layer_points(summary: dict, order=()) -> dict:
    """{task: {encoder (pool): [(layer, success, low, high), ...]}} for the layer sweep: the lines read at more
    than one layer, and the tasks that have one; points in `order` (layer names), others after them."""
    panels = {}
    for row in summary["runs"]:
        if row["encoder"] != "state":
            line = f"{row['encoder']} ({row['pool']})"
            panels.setdefault(row["task"], {}).setdefault(line, []).append((row["layer"], row["success_rate"], *row["ci95"]))
    rank = {str(n): i for i, n in enumerate(order)}
    swept = {task: {line: sorted(points, key=lambda p: rank.get(str(p[0]), len(rank))) for line, points in lines.items()
                    if len(points) > 1} for task, lines in panels.items()}
    return {task: lines for task, lines in swept.items() if lines}


def export_draws(done: dict) -> dict[str, list[str]]:
    """{variant_p<seed>: its encoder fingerprints} for the exports whose cells read more than one draw: an export
    made again in a later sitting (on another machine: other bf16 kernels, other weights) is another draw of the same
    recipe and seed, and a reader of the pooled figures should know."""
    seen: dict[str, set] = {}
    for cell, record in done.items():
        if cell.pretrain_seed is not None:
            for evaluation in record["evaluations"].values():
                if evaluation.get("encoder_fingerprint"):
                    seen.setdefault(f"{cell.encoder}_p{cell.pretrain_seed}", set()).add(evaluation["encoder_fingerprint"])
    return {name: sorted(prints) for name, prints in seen.items() if len(prints) > 1}
