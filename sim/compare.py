"""Compare encoders on the same tasks and seeds: does video pre-training help the policy?

    python sim/compare.py                                             # franka_pick: toto, random, state
    python sim/compare.py tasks=[franka_pick,franka_cabinet,kuka_pick,kuka_cabinet] seeds=[0,1]
    python sim/compare.py rounds=4 steps_per_round=8192 'extra=["encoder.layer=0.5"]'
    python sim/compare.py --help                                      # every option (CompareConfig)

For every (task, encoder, seed) it runs `python sim/train_policy.py` (DAgger by default) into
out/<task>_<encoder>_s<seed>, then `python sim/eval_policy.py` on it, each as its own process
with the same overrides apart from the encoder: the runs differ in nothing but their features.
Finished runs and evaluations are reused, so an interrupted comparison resumes. Writes
out/compare.png (student success vs env steps, one panel per task, one line per encoder:
mean over seeds, band = min..max), out/summary.json and out/summary.md (final evaluation per
task and encoder, successes pooled over seeds, Wilson 95% intervals).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] == str(Path(__file__).resolve().parent):  # run as a script: import from the checkout root
    sys.path[0] = str(ROOT)

import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import hydra  # noqa: E402
from hydra.core.config_store import ConfigStore  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from policies.curves import plot_comparison  # noqa: E402
from policies.configuration import ENCODER_KINDS  # noqa: E402
from sim.policy_config import AlgoSettings, TrainPolicyConfig, check_choices  # noqa: E402
from toto_robot.cli import bad_input_exits  # noqa: E402


@dataclass
class CompareConfig:
    tasks: list = field(default_factory=lambda: ["franka_pick"])
    encoders: list = field(default_factory=lambda: list(ENCODER_KINDS))
    seeds: list = field(default_factory=lambda: [0])
    algo: str = "dagger"
    # every run's budget: train_policy.py's defaults (AlgoSettings, TrainPolicyConfig), unless set here
    rounds: int = AlgoSettings.rounds
    steps_per_round: int = AlgoSettings.steps_per_round
    num_envs: int = TrainPolicyConfig.num_envs
    eval_episodes: int = TrainPolicyConfig.eval_episodes  # pure-student episodes after every round (the curves)
    episodes: int = 50  # final evaluation of every run (eval_policy.py, its held-out seeds)
    encoder_path: str = "runs/pretrain/encoder"  # toto and random read it
    extra: list = field(default_factory=list)  # further train_policy.py overrides, the same for every run
    out: str = "runs/compare"


ConfigStore.instance().store(name="compare_schema", node=CompareConfig)


def check(cfg: CompareConfig) -> None:
    """One-line ValueErrors for names no run could use, before anything starts."""
    if not cfg.tasks or not cfg.encoders or not cfg.seeds:
        raise ValueError("tasks, encoders and seeds must each name at least one value")
    check_choices([f"task={t}" for t in cfg.tasks] + [f"encoder={e}" for e in cfg.encoders])
    for arg in cfg.extra:
        key = str(arg).lstrip("+").partition("=")[0]
        if key in ("task", "encoder", "seed", "out", "algo"):
            raise ValueError(f"extra={arg!r}: {key} is set by the comparison itself (tasks=, encoders=, seeds=, algo=)")


def train_args(cfg: CompareConfig, task: str, encoder: str, seed: int, out: Path) -> list[str]:
    return [f"task={task}", f"encoder={encoder}", f"seed={seed}", f"algo={cfg.algo}", f"algo.rounds={cfg.rounds}",
            f"algo.steps_per_round={cfg.steps_per_round}", f"num_envs={cfg.num_envs}",
            f"eval_episodes={cfg.eval_episodes}", f"encoder.path={cfg.encoder_path}", f"out={out}",
            "progress=false", *map(str, cfg.extra)]


def run_step(script: str, args: list[str]) -> None:
    """A child entry point; its one-line error becomes ours."""
    done = subprocess.run([sys.executable, str(ROOT / "sim" / script), *args], cwd=os.getcwd(),
                          stderr=subprocess.PIPE, text=True)
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise ValueError(f"{script} {' '.join(args[:3])} failed: {lines[-1] if lines else f'exit {done.returncode}'}")


def evaluated(run: Path, episodes: int) -> dict | None:
    path = run / "eval.json"
    if path.is_file():
        result = json.loads(path.read_text())
        if result.get("episodes") == episodes:
            return result
    return None


def compare(cfg: CompareConfig) -> dict:
    """Run (or resume) every training and evaluation; write the plot and summaries; return the summary."""
    check(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(t, e, int(s)) for t in cfg.tasks for e in cfg.encoders for s in cfg.seeds]
    for i, (task, encoder, seed) in enumerate(jobs, 1):
        run = out / f"{task}_{encoder}_s{seed}"
        start = time.time()
        print(f"[{i}/{len(jobs)}] {task} encoder={encoder} seed={seed}: training -> {run}", flush=True)
        run_step("train_policy.py", train_args(cfg, task, encoder, seed, run))
        if evaluated(run, cfg.episodes) is None:
            print(f"[{i}/{len(jobs)}] evaluating {cfg.episodes} episodes", flush=True)
            run_step("eval_policy.py", [f"run={run}", f"episodes={cfg.episodes}", "progress=false"])
        result = evaluated(run, cfg.episodes)
        print(f"[{i}/{len(jobs)}] success {result['successes']}/{result['episodes']} ({time.time() - start:.0f} s)", flush=True)
    summary = summarize(out, jobs)
    plot_comparison(out / "compare.png", curves(out, cfg))
    return summary


def summarize(out: Path, jobs: list[tuple[str, str, int]]) -> dict:
    """Pool every (task, encoder)'s evaluations over seeds; write summary.json and summary.md."""
    from policies.curves import wilson_interval
    from toto_robot.io import atomic_write

    rows = {}
    for task, encoder, seed in jobs:
        result = json.loads((out / f"{task}_{encoder}_s{seed}" / "eval.json").read_text())
        metrics = [json.loads(line) for line in (out / f"{task}_{encoder}_s{seed}" / "metrics.jsonl").read_text().splitlines()]
        row = rows.setdefault(f"{task}/{encoder}", {"task": task, "encoder": encoder, "seeds": [], "successes": 0,
                                                    "episodes": 0, "env_steps": metrics[-1]["env_steps"]})
        row["seeds"].append(seed)
        row["successes"] += result["successes"]
        row["episodes"] += result["episodes"]
    for row in rows.values():
        row["success_rate"] = row["successes"] / row["episodes"]
        row["ci95"] = list(wilson_interval(row["successes"], row["episodes"]))
    lines = ["| task | encoder | env steps | success | 95% CI | seeds |", "|---|---|---|---|---|---|"]
    for row in rows.values():
        low, high = row["ci95"]
        lines.append(f"| {row['task']} | {row['encoder']} | {row['env_steps']:,} | {row['successes']}/{row['episodes']} = "
                     f"{row['success_rate']:.0%} | {low:.0%}-{high:.0%} | {len(row['seeds'])} |")
    summary = {"runs": list(rows.values())}
    with atomic_write(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    with atomic_write(out / "summary.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return summary


def curves(out: Path, cfg: CompareConfig) -> dict:
    """{task: {encoder: [per-seed [(env_steps, student success), ...]]}} from the runs' metrics.jsonl."""
    panels = {}
    for task in cfg.tasks:
        for encoder in cfg.encoders:
            for seed in cfg.seeds:
                rows = [json.loads(line) for line in (out / f"{task}_{encoder}_s{seed}" / "metrics.jsonl").read_text().splitlines()]
                curve = [(r["env_steps"], r["eval_success_rate"]) for r in rows if r.get("eval_success_rate") is not None]
                panels.setdefault(task, {}).setdefault(encoder, []).append(curve)
    return panels


@hydra.main(version_base="1.3", config_path="conf", config_name="compare")
def main(cfg) -> None:
    with bad_input_exits():
        compare(OmegaConf.to_object(cfg))
    print(f"-> {Path(cfg.out) / 'compare.png'}, {Path(cfg.out) / 'summary.md'}")


if __name__ == "__main__":
    main()
