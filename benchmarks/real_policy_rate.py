"""Real-robot policy rate: ms per `RobotPolicy.act` on a raw 480x640 hand-camera frame, end to end.

Why: the policy node (real/nodes/policy.py) runs inference inline in its 10 Hz timer callback, so
one action (preprocess_frame's lower-centre 448 crop + resize, the frozen encoder to its middle
block, the BC actor) must fit in the 100 ms period on this 2-core CPU, with room to spare for ROS
callbacks and image conversion: the issue asks for >= 9 Hz. For each model preset and dtype this
writes a BC policy directory (a random-weight encoder as benchmarks/encoder_latency.py builds
it, a freshly initialised policies.Policy with the real-demo contract, saved by save_pretrained),
loads it with real.adapter.load_robot_policy exactly as the node does, and times `policy.act(frame, q, width)` on random uint8 frames, next
to the parts: preprocess_frame, the encoder on the preprocessed frame, and the head (proprio
standardization + actor). Random weights cost what trained ones do. Cases run round-robin (so
background load hits all alike); best and median are printed, "fits 10 Hz" reads the median
against 90 ms (100 ms with a 10% margin), and the load average is printed (2 cores: above ~1,
other jobs share them and every figure is slower).

    PYTHONPATH=. python benchmarks/real_policy_rate.py
    PYTHONPATH=. python benchmarks/real_policy_rate.py --models nano --dtypes bf16 --repeats 5
    PYTHONPATH=. python benchmarks/real_policy_rate.py --models base --encoder runs/pretrain/encoder
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch/OpenMP load (see encoder_latency.py)

import argparse  # noqa: E402
import itertools  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from encoder_latency import CLIP, RES, time_round_robin  # noqa: E402  (benchmarks/ is the script's sys.path[0])

from encoder.model import Toto  # noqa: E402
from encoder.presets import preset_config  # noqa: E402
from encoder.tokenizers import save_tokenizer  # noqa: E402
from encoder.tokenizers.fsq import FSQTokenizer  # noqa: E402
from policies import EncoderSpec, Policy, PolicyConfig  # noqa: E402
from real.adapter import load_robot_policy  # noqa: E402
from real.demo_layout import ACTION_DIM, NUM_JOINTS, RealLayout  # noqa: E402
from real.preprocess import RPT_FRAME, preprocess_frame  # noqa: E402
from real.train_bc import TrainBCConfig  # noqa: E402
from toto_robot import load_encoder  # noqa: E402
from toto_robot.checkpoint import save_weights  # noqa: E402
from toto_robot.compute import resolve  # noqa: E402

PERIOD_MS, MARGIN = 100.0, 0.10  # the node's 10 Hz timer; the median must leave 10% of it free


def write_encoder_dir(name: str, path: Path) -> Path:
    """Preset `name` with random weights and a fresh FSQ tokenizer (as encoder_latency.build_encoders
    makes them), exported as pretrain's export stage writes runs/pretrain/encoder."""
    torch.manual_seed(0)
    config, tokenizer = preset_config(name), FSQTokenizer().eval()
    save_tokenizer(tokenizer, path)
    save_weights(path, "toto", Toto(config).state_dict(), kind="toto", config=config.to_dict(), tokenizer="tokenizer",
                 resolution=RES, frames=CLIP, grid=RES // tokenizer.downsample, seq_len=config.max_seq_len)
    return path


def write_policy_dir(encoder_dir: Path, dtype: str, out: Path) -> Path:
    """A freshly initialised BC policy (7 joints + gripper in, 8 actions out, as real/train_bc.py builds it)
    with identity standardization, saved with its encoder spec and the real-demo contract."""
    encoder = load_encoder(encoder_dir, dtype=dtype)
    observation, action = RealLayout(resolution=encoder.resolution, control_hz=10.0).contract(uses_gripper=True)
    torch.manual_seed(0)
    spec = EncoderSpec(path=str(encoder_dir), pool=TrainBCConfig().encoder.pool, dtype=dtype)  # what real BC trains with
    config = PolicyConfig(encoder=spec, feat_dim=encoder.feature_dim,
                          proprio_dim=NUM_JOINTS + 1, action_dim=ACTION_DIM, bound="clip",
                          normalize=("features", "proprio", "actions"), observation=observation, action=action,
                          resolution=encoder.resolution)
    Policy(config).save_pretrained(out)
    return out


def policy_cases(policy, key: tuple) -> dict:
    """act end to end, and its three parts, on a rotation of random raw frames."""
    rng = np.random.default_rng(0)
    raw = [rng.integers(0, 256, (*RPT_FRAME, 3), dtype=np.uint8) for _ in range(4)]
    frames = itertools.cycle(raw)
    q, width = rng.uniform(-1, 1, NUM_JOINTS).astype(np.float32), 0.04
    resolution = policy.policy.config.resolution
    small = preprocess_frame(raw[0], resolution)[None]
    obs = policy.observation(raw[0], q, width)
    features = policy.policy.features({"pixels": obs["pixels"][None]})

    def head():
        return policy.policy.act(features, obs["proprio"][None])[0]

    return {(*key, "act"): lambda: policy.act(next(frames), q, width),
            (*key, "pre"): lambda: preprocess_frame(next(frames), resolution),
            (*key, "enc"): torch.no_grad()(lambda: policy.encoder(small).float().numpy()),
            (*key, "head"): head}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="nano,base", help="Toto presets with random weights (comma-separated; '' for none)")
    parser.add_argument("--dtypes", default="fp32,bf16", help="fp32 and/or bf16 encoder weights")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds per case (best and median printed)")
    parser.add_argument("--encoder", default=None, help="also time an exported encoder directory (e.g. runs/pretrain/encoder)")
    args = parser.parse_args(argv)
    models, dtypes = [m for m in args.models.split(",") if m], args.dtypes.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} at start")
    print(resolve().line("auto would choose (the policy node's default)"))

    policies, cases = {}, {}
    with tempfile.TemporaryDirectory(prefix="real_policy_rate_") as tmp:
        sources = {m: write_encoder_dir(m, Path(tmp) / f"encoder_{m}") for m in models}
        if args.encoder:
            path = Path(args.encoder).expanduser()
            sources[f"{path.parent.name}/{path.name}"] = path
        for (label, source), dtype in itertools.product(sources.items(), dtypes):
            out = write_policy_dir(source, dtype, Path(tmp) / f"policy_{label}_{dtype}")
            policies[label, dtype] = policy = load_robot_policy(out, dtype=dtype)  # as real/nodes/policy.py load_policy
            cases.update(policy_cases(policy, (label, dtype)))
    best, median = time_round_robin(cases, args.repeats)

    budget = PERIOD_MS * (1 - MARGIN)
    print(f"\n== raw 480x640 frame -> action, RobotPolicy.act (best / median of {args.repeats} interleaved rounds, ms) ==")
    print(f"{'model':16s} {'dtype':5s} {'res':>4s} {'layer':>6s} {'act best':>9s} {'median':>7s} {'max Hz':>7s} "
          f"{'preproc':>8s} {'encoder':>8s} {'head':>6s}  fits 10 Hz (median < {budget:.0f} ms)")
    for (label, dtype), policy in policies.items():
        ms = {part: 1e3 * median[label, dtype, part] for part in ("act", "pre", "enc", "head")}
        enc = policy.encoder
        fits = "yes" if ms["act"] < budget else "NO"
        print(f"{label:16s} {dtype:5s} {policy.policy.config.resolution:4d} {f'{enc.layer}/{enc.n_layers}':>6s} "
              f"{1e3 * best[label, dtype, 'act']:9.1f} {ms['act']:7.1f} {1e3 / ms['act']:7.1f} "
              f"{ms['pre']:8.1f} {ms['enc']:8.1f} {ms['head']:6.2f}  {fits}")
    print("(parts are medians timed separately; act also converts frames and proprio, so it can exceed their sum)")
    print(f"\nload average {os.getloadavg()[0]:.1f} at end (2 cores: above ~1 other jobs share them and every figure is slower)")


if __name__ == "__main__":
    main()
