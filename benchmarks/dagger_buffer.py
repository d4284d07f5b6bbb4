"""DAgger's per-round cost outside the env: storing a round's rows and fitting the policy, by buffer size.

Why: a DAgger round appends `steps_per_round` rows to the aggregated buffer (one `add` per vector
step) and then fits the policy on all rows, so these costs grow with the round. A storage cost
that grows with what is already stored is quadratic over a run: until this benchmark existed,
every `add` concatenated the whole buffer, and the main job's late rounds spent more time copying
rows than collecting them. For buffers already holding N rows it prints the seconds of one
round's adds (the main job's shape: 512 vector steps x 16 envs), of the concatenation that
training reads, and of one round's fit (`policies.train_actor`, 10 epochs, batch 256), side by
side. Features are random (cost depends on shape, not values); their size defaults to the main
job's (nano width 192 x grid4's 16 cells).

    python benchmarks/dagger_buffer.py
    python benchmarks/dagger_buffer.py --sizes 0,49152 --feature-dim 768 --epochs 10
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from policies import AggregatedBuffer, DaggerConfig, Policy, PolicyConfig, train_actor  # noqa: E402


def filled(rows: int, feature_dim: int, proprio_dim: int, action_dim: int, rng) -> AggregatedBuffer:
    buffer = AggregatedBuffer()
    if rows:
        buffer.add(rng.standard_normal((rows, feature_dim), np.float32), np.zeros((rows, proprio_dim), np.float32),
                   rng.uniform(-1, 1, (rows, action_dim)).astype(np.float32), 0)
    return buffer


def main(argv=None) -> None:
    defaults = DaggerConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,16384,40960", help="rows already in the buffer (comma-separated)")
    parser.add_argument("--feature-dim", type=int, default=192 * 16, help="feature size (nano 192 x grid4 16 cells)")
    parser.add_argument("--envs", type=int, default=16, help="rows per add (the vector env's size)")
    parser.add_argument("--steps", type=int, default=defaults.steps_per_round, help="rows per round")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs of one round's fit (0: skip the fit)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    proprio_dim, action_dim = 18, 9
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} at start")
    print(f"one round = {args.steps} rows in adds of {args.envs}, features {args.feature_dim}-d, fit {args.epochs} epochs x batch "
          f"{defaults.batch_size}\n")
    print("| rows before | adds (s) | concatenate (s) | fit (s) |\n|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        buffer = filled(size, args.feature_dim, proprio_dim, action_dim, rng)
        batch = (rng.standard_normal((args.envs, args.feature_dim), np.float32), np.zeros((args.envs, proprio_dim), np.float32),
                 rng.uniform(-1, 1, (args.envs, action_dim)).astype(np.float32))
        start = time.perf_counter()
        for _ in range(args.steps // args.envs):
            buffer.add(*batch, 1)
        adds = time.perf_counter() - start
        start = time.perf_counter()
        buffer.arrays()
        concatenate = time.perf_counter() - start
        fit = float("nan")
        if args.epochs:
            policy = Policy(PolicyConfig(feat_dim=args.feature_dim, proprio_dim=proprio_dim, action_dim=action_dim))
            start = time.perf_counter()
            train_actor(policy, buffer, args.epochs, defaults.batch_size, defaults.lr, defaults.weight_decay, seed=0)
            fit = time.perf_counter() - start
        print(f"| {size} | {adds:.3f} | {concatenate:.2f} | {fit:.1f} |")
    print(f"\nload average {os.getloadavg()[0]:.1f} at end (2 cores: above ~1 other jobs share them and every figure is slower)")


if __name__ == "__main__":
    main()
