"""A study's throughput: policy cells finished an hour with `sim/compare.py workers=1` against `workers=2`.

Why: `compare.py workers=N` runs N cells side by side, each child on cores // N torch threads, on the claim that a
policy cell uses a second core poorly (small batches, MuJoCo rendering, Python between env steps). This measures it
on the machine at hand, both settings in one run: the same small study (one task, `--cells` policy seeds of a frozen
Toto encoder, short DAgger runs, a few held-out episodes) into fresh folders, workers=1 with the default threads
(all cores) and workers=2; it prints wall minutes and cells an hour side by side, and the load average.

    python benchmarks/study_workers.py                                   # runs/pretrain/encoder (the quickstart's)
    python benchmarks/study_workers.py --encoder runs/study/exports/toto_default_p0/encoder --cells 4 --steps 4096
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from toto_robot.compute import machine, usable_cores  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run_study(workers: int, out: Path, args) -> float:
    """Wall seconds of one `compare.py` run of the small study with `workers`."""
    overrides = ["encoders=[toto]", f"seeds=[{','.join(str(s) for s in range(args.cells))}]", f"tasks=[{args.task}]",
                 "rounds=1", f"steps_per_round={args.steps}", f"episodes={args.episodes}", "eval_episodes=2",
                 f"encoder_path={Path(args.encoder).resolve()}", f"workers={workers}", f"out={out}", 'extra=["videos=0"]']
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # each setting picks its own threads
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "sim/compare.py", *overrides], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"error: compare.py workers={workers} failed: {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", default="runs/pretrain/encoder", help="a frozen Toto export (python pretrain/run.py)")
    parser.add_argument("--task", default="franka_pick")
    parser.add_argument("--cells", type=int, default=4, help="policy seeds, one cell each (even, so two workers pair up)")
    parser.add_argument("--steps", type=int, default=2048, help="env steps of each cell's one DAgger round")
    parser.add_argument("--episodes", type=int, default=5, help="held-out episodes of each cell")
    args = parser.parse_args()
    if not (Path(args.encoder) / "toto.json").is_file():
        sys.exit(f"error: --encoder {args.encoder}: no frozen Toto export there (make one: python pretrain/run.py)")
    print(f"machine: {machine()}; {usable_cores()} cores for this process; load average before: {os.getloadavg()[0]:.2f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            seconds = run_study(workers, Path(tmp) / f"workers{workers}", args)
            rows.append((workers, seconds))
    print(f"{args.cells} cells ({args.task}, 1 DAgger round x {args.steps} env steps, {args.episodes} held-out episodes); "
          f"load average after: {os.getloadavg()[0]:.2f}")
    print("| workers | torch threads a child | wall min | cells an hour | vs workers=1 |")
    print("|---|---|---|---|---|")
    for workers, seconds in rows:
        threads = "default" if workers == 1 else max(1, usable_cores() // workers)
        print(f"| {workers} | {threads} | {seconds / 60:.1f} | {args.cells / seconds * 3600:.0f} | {rows[0][1] / seconds:.2f}x |")


if __name__ == "__main__":
    main()
