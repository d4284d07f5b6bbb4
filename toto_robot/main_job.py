"""The main job on embedded defaults: pre-train Toto, train a policy on its frozen features, evaluate, report.

    python -m toto_robot.main_job                 # what `bash scripts/quickstart.sh` runs after installing
    python -m toto_robot.main_job --rounds 10     # a longer DAgger run
    python -m toto_robot.main_job --help

Stages, each its project entry point in its own process (so each can also be run, resumed or
changed by hand):
1. `python pretrain/run.py out=<pretrain>`: robot videos -> tokenizer -> nano -> frozen encoder;
2. `python sim/train_policy.py task=<task> encoder=toto`: DAgger on the encoder's features;
3. `python sim/eval_policy.py`: success over held-out seeded episodes, 95% CI, MP4 rollouts;
4. <out>/REPORT.md: the figures of every stage with their plots.
Every stage resumes where it stopped, so rerunning after an interruption finishes the job.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from toto_robot.run_paths import PRETRAIN_OUT
from toto_robot.cli import bad_input_exits
from toto_robot.io import atomic_write
from toto_robot.lock import run_lock



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from sim.policy_config import EVAL_EPISODES, TrainPolicyConfig  # (lazy: gymnasium, hydra, stable_baselines3, torch)
    from sim.trainers import DaggerSettings  # (lazy: as above)

    parser = argparse.ArgumentParser(prog="python -m toto_robot.main_job", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="runs/main", help="where the policy run, evaluation and REPORT.md go")
    parser.add_argument("--pretrain-out", default=PRETRAIN_OUT, help="pretrain/run.py's out (its encoder/ is used)")
    parser.add_argument("--task", default="franka_pick", help="sim task of the policy")
    policy, algo = TrainPolicyConfig(), DaggerSettings()  # the defaults of `python sim/train_policy.py`: one source
    parser.add_argument("--pool", default=policy.encoder.pool,
                        help="pooling of the mid-layer tokens: avg is the paper's protocol; grid4 (4x4 regional averages) "
                             "keeps where the cube is, which avg loses with a RoPE-only model (see README, Policies)")
    parser.add_argument("--rounds", type=int, default=algo.rounds, help="DAgger rounds")
    parser.add_argument("--steps-per-round", type=int, default=algo.steps_per_round, help="env steps per DAgger round")
    parser.add_argument("--num-envs", type=int, default=policy.num_envs, help="envs stepped together (batched encoder calls)")
    parser.add_argument("--eval-episodes", type=int, default=EVAL_EPISODES, help="final evaluation episodes")
    parser.add_argument("--videos", type=int, default=4, help="MP4s of the first evaluation episodes")
    parser.add_argument("--pretrain-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="extra pretrain/run.py override (repeatable), e.g. train.steps=100")
    parser.add_argument("--policy-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="extra sim/train_policy.py override (repeatable), e.g. eval_episodes=8")
    args = parser.parse_args(argv)
    if min(args.rounds, args.steps_per_round, args.num_envs, args.eval_episodes) < 1 or args.videos < 0:
        parser.error("--rounds, --steps-per-round, --num-envs and --eval-episodes must be >= 1, --videos >= 0")
    return args


def stage(index: int, title: str, command: list[str]) -> float:
    """Run one stage's entry point; its output streams through. Returns its wall time in seconds."""
    print(f"\n==> [{index}/4] {title}\n    {' '.join(command)}", flush=True)
    start = time.time()
    done = subprocess.run([sys.executable, *command], cwd=os.getcwd())
    if done.returncode:
        print(f"error: stage {index} ({title}) failed with exit code {done.returncode}; fix the cause and rerun: "
              "finished stages are reused", file=sys.stderr)
        sys.exit(done.returncode)
    seconds = time.time() - start
    print(f"    done in {seconds / 60:.1f} min", flush=True)
    return seconds


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with bad_input_exits(), run_lock(args.out):
        run_job(args)


def run_job(args: argparse.Namespace) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    out, pretrain = Path(args.out), Path(args.pretrain_out)
    run = out / f"{args.task}_toto_dagger"
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    times["pretrain"] = stage(1, "pre-training Toto nano on rendered robot video, clips and photos",
                              ["-m", "pretrain.run", f"out={pretrain}", *args.pretrain_arg])
    times["dagger"] = stage(2, f"DAgger on {args.task} with the frozen encoder's mid-layer features ({args.pool} pooled)",
                            ["-m", "sim.train_policy", f"task={args.task}", "encoder=toto",
                             f"encoder.path={pretrain / 'encoder'}", f"encoder.pool={args.pool}", f"algo.rounds={args.rounds}",
                             f"algo.steps_per_round={args.steps_per_round}", f"num_envs={args.num_envs}",
                             f"out={run}", *args.policy_arg])
    times["eval"] = stage(3, f"evaluating the policy on {args.eval_episodes} held-out episodes",
                          ["-m", "sim.eval_policy", f"run={run}", f"episodes={args.eval_episodes}",
                           f"videos={args.videos}"])
    print("\n==> [4/4] writing the report", flush=True)
    report = write_report(out, pretrain, run, times)
    print(f"\nreport: {report}")


def _objective_line(encoder: Path) -> str:
    """What the exported transformer was trained to do, from its saved config (the report names it)."""
    config = (_read_json(encoder / "toto.json") or {}).get("config", {})
    if config.get("code_head"):
        return "patches in, the next patch's code out: objective=patch_dvae"
    if config.get("patch_dim"):
        return "patches in, the next patch out: tokenizer=patch"
    return "next token"


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def stability_lines(tokens: dict | None, features: dict | None) -> list[str]:
    """REPORT.md bullets: token stability on held-out renders (the tokenizer stage's report) and the
    exported features' self-match and code-embedding geometry (pretrain/token_stability.py)."""
    from pretrain.token_stability import feature_lines, summary_lines  # (lazy: torch)

    lines = [f"- Token stability (held-out renders): {line}" for line in summary_lines(tokens)] if tokens else []
    return lines + ([f"- Features: {line}" for line in feature_lines(features)] if features else [])


def write_report(out: Path, pretrain: Path, run: Path, times: dict) -> Path:
    """REPORT.md in `out` with the figures of every stage; the plots are copied beside it."""
    figures = {"loss_curve.png": pretrain / "train" / "loss_curve.png",
               "tokenizer_reconstructions.png": pretrain / "tokenizer" / "reconstructions.png",
               "success_curve.png": run / "success_curve.png"}
    for name, source in figures.items():
        if source.is_file():
            shutil.copyfile(source, out / name)
    tokenizer = json.loads((pretrain / "tokenizer" / "metrics.json").read_text())
    train_rows = _read_jsonl(pretrain / "train" / "metrics.jsonl")
    val = [r for r in train_rows if "val_loss" in r]
    rounds = _read_jsonl(run / "metrics.jsonl")
    encoder = json.loads((run / "policy.json").read_text())["encoder"]
    result = json.loads((run / "eval.json").read_text())
    low, high = result["ci95"]
    last = rounds[-1]
    lines = [
        "# toto-robot main job",
        "",
        f"Stage times: pre-training {times['pretrain'] / 60:.1f} min (0 if reused), DAgger {times['dagger'] / 60:.1f} min, "
        f"evaluation {times['eval'] / 60:.1f} min.",
        "",
        "## 1. Pre-training (`python pretrain/run.py`)",
        "",
        f"- FSQ tokenizer: reconstruction PSNR {tokenizer['psnr_db']:.1f} dB (untrained {tokenizer['psnr_init_db']:.1f}) "
        f"on {tokenizer['eval_frames']} held-out frames; code perplexity {tokenizer['code_perplexity']:.0f}, "
        f"usage {tokenizer['codebook_usage']:.1%} (diagnostics, not targets).",
        *stability_lines(tokenizer.get("stability"), _read_json(pretrain / "encoder" / "feature_stability.json")),
        f"- Toto ({_objective_line(pretrain / 'encoder')}): {train_rows[-1]['step']} steps, "
        f"{train_rows[-1]['tokens_seen']:,} tokens; train loss "
        f"{train_rows[0]['loss']:.2f} -> {train_rows[-1]['loss']:.2f}"
        + (f", validation loss {val[-1]['val_loss']:.2f}" if val else "") + f". Encoder: `{pretrain / 'encoder'}`.",
        "",
        "![pre-training loss](loss_curve.png)" if (out / "loss_curve.png").is_file() else "",
        "",
        "![tokenizer reconstructions](tokenizer_reconstructions.png)" if (out / "tokenizer_reconstructions.png").is_file() else "",
        "",
        "## 2. DAgger on frozen mid-layer features (`python sim/train_policy.py`)",
        "",
        f"Features: layer {encoder['layer']!r} of the frozen encoder, pool `{encoder['pool']}` "
        "(avg: the paper's protocol; grid4: 4x4 regional averages, which keep where the cube is), "
        "with MVP's actor; the scripted expert relabels every visited state.",
        "",
        "| round | beta | env steps | buffer | train loss | student success |",
        "|---|---|---|---|---|---|",
        *(f"| {r['round']} | {r['beta']:.3f} | {r['env_steps']:,} | {r['buffer']:,} | {r['train_loss']:.4f} | "
          + ("-" if r.get("eval_success_rate") is None else f"{r['eval_success_rate']:.0%}") + " |" for r in rounds),
        "",
        "![success vs env steps](success_curve.png)",
        "",
        f"## 3. Evaluation (`python sim/eval_policy.py run={run}`)",
        "",
        f"**{result['task']}: {result['successes']}/{result['episodes']} = {result['success_rate']:.0%} success** "
        f"(95% Wilson interval {low:.0%}-{high:.0%}) after {last['env_steps']:,} env steps, held-out seeds from {result['seed']}.",
        "",
        *(f"- rollout video: `{v}`" for v in result["videos"]),
        "",
        "Compare with an untrained encoder and the privileged state: `python sim/compare.py`.",
        "",
    ]
    path = out / "REPORT.md"
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path


if __name__ == "__main__":
    main()
