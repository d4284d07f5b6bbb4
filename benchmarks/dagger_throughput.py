"""DAgger data collection speed: env steps per second with frozen Toto features, by envs per batch.

Why: a DAgger round is `steps_per_round` env steps, each needing a rendered wrist frame, its
features and an expert label, so this rate sets how many rounds fit in the main job's hour. For
num_envs in {1, 8, 16} (one sync vector env, the encoder called once per vector step on all its
frames) it prints env steps/s of `policies.rollout` with the expert acting (what round 0 does),
and the share of that time spent in the encoder, next to the same rollout with state features
(physics + rendering + expert only). Cases run round-robin so background load hits all alike;
the best round is reported and the load average printed.

    python benchmarks/dagger_throughput.py                       # runs/pretrain/encoder, dtype auto, grid4
    python benchmarks/dagger_throughput.py --pool avg --dtype fp32 --steps 512
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402

import sim  # noqa: E402  (before mujoco users: chooses the GL backend)
from policies import EncoderSpec, StateFeatures, TotoFeatures, rollout  # noqa: E402
from sim.experts import make_expert  # noqa: E402
from toto_robot import load_encoder  # noqa: E402


class Timed:
    """A feature provider that adds up the seconds spent in the wrapped one."""

    def __init__(self, provider):
        self.provider, self.key, self.dim, self.seconds = provider, provider.key, provider.dim, 0.0

    def __call__(self, obs):
        start = time.perf_counter()
        out = self.provider(obs)
        self.seconds += time.perf_counter() - start
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", default="runs/pretrain/encoder")
    parser.add_argument("--pool", default=EncoderSpec.pool, help="the policies' default pooling unless set")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 where native, else fp32) | fp32 | bf16")
    parser.add_argument("--envs", default="1,8,16")
    parser.add_argument("--steps", type=int, default=1024, help="env steps per measurement")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    encoder = load_encoder(args.encoder, pool=args.pool, dtype=args.dtype)
    encoder.compute.announce("encoder")
    cases = []
    for n in map(int, args.envs.split(",")):
        for name in ("toto", "state"):
            mode = "pixels+proprio+state" if name == "toto" else "proprio+state"
            env = sim.make_vec("franka_pick", n, vectorization_mode="sync", obs_mode=mode, image_size=encoder.resolution)
            cases.append({"envs": n, "features": name, "env": env, "best": None,
                          "expert": make_expert("franka_pick", env.envs[0].unwrapped.config),
                          "provider": Timed(TotoFeatures(encoder) if name == "toto" else StateFeatures())})
    for _ in range(args.repeats):
        for case in cases:
            case["provider"].seconds = 0.0
            start = time.perf_counter()
            rollout(case["env"], case["provider"], case["expert"], None, 1.0, seed=0, steps=args.steps)
            seconds = time.perf_counter() - start
            if case["best"] is None or seconds < case["best"][0]:
                case["best"] = (seconds, case["provider"].seconds)
    print(f"franka_pick, {encoder.resolution}px wrist frames, encoder {args.encoder} ({args.pool}, {encoder.compute.precision}), "
          f"{args.steps} steps a case, best of {args.repeats}; load average {os.getloadavg()[0]:.2f}")
    print("| envs | features | env steps/s | encoder share |\n|---|---|---|---|")
    for case in cases:
        seconds, encoder_seconds = case["best"]
        share = f"{encoder_seconds / seconds:.0%}" if case["features"] == "toto" else "-"
        print(f"| {case['envs']} | {case['features']} | {args.steps / seconds:.0f} | {share} |")
        case["env"].close()


if __name__ == "__main__":
    main()
