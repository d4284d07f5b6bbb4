"""Pre-training throughput of the Toto transformer vs Hugging Face Llama, side by side in one run.

Why: pre-training on this 2-core CPU is bound by train tokens/s, and the model is only worth its
own code if it beats the reference implementation of the same network (target: >= 1.2x HF
`LlamaForCausalLM` with the identical config and weights). For each preset, precision (fp32, bf16
autocast) and batch x sequence, both models run the same step, interleaved so background load
hits both alike: forward, next-token cross-entropy, backward, AdamW. MFU is achieved model FLOPs
over a GEMM peak measured in the same run:

    FLOPs/token = 6 * (matmul parameters: all but the embedding table)
                + 6 * n_layers * seq * dim   (causal attention: QK^T and AV over the lower half, x3 for backward)

    python benchmarks/pretrain_throughput.py                       # nano 1x4098, base 1x1024
    python benchmarks/pretrain_throughput.py --shape base=2x2048 --precisions bf16 --steps 5
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch/OpenMP load: 3-8x slower without it under load

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from contextlib import nullcontext  # noqa: E402

import torch  # noqa: E402

from encoder.model import Toto, TotoConfig  # noqa: E402
from encoder.objectives import next_token_loss  # noqa: E402
from toto_robot.compute import resolve  # noqa: E402
from encoder.presets import PRESETS, preset_config  # noqa: E402
from pretrain.sizing import flops_per_token  # noqa: E402  (the count the training metrics use)

DEFAULT_SHAPES = {"nano": (1, 4098), "base": (1, 1024)}
TARGET_SPEEDUP = 1.2


def encode_rate(tokenizer, batch: int, size: int = 128, repeats: int = 5) -> float:
    """Frames/s of tokenizer.encode on random uint8 frames (median of `repeats` calls after one warm-up)."""
    frames = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)
    with torch.inference_mode():
        tokenizer.encode(frames)
        times = [_timed(lambda: tokenizer.encode(frames)) for _ in range(repeats)]
    return batch / statistics.median(times)


def tokenizer_rows(with_dalle: bool = True) -> list[tuple[str, str, str]]:
    """Encode throughput at 128 px: ours must keep a 10 Hz robot loop fed (goal >= 50 frames/s);
    the official dVAE's architecture (random weights: same compute) is timed beside it."""
    from encoder.tokenizers.dalle import DalleTokenizer, Encoder
    from encoder.tokenizers.fsq import FSQConfig, FSQTokenizer
    from encoder.tokenizers.patch import PatchTokenizer

    fsq = FSQTokenizer(FSQConfig()).eval()
    rows = [(f"FSQ (ours) encode, batch {b}, frames/s", f"{encode_rate(fsq, b):.0f}", "goal >= 50") for b in (1, 32)]
    rows.append(("patch tokens, batch 32, frames/s", f"{encode_rate(PatchTokenizer(8), 32):.0f}", "no network"))
    if with_dalle:
        dalle = DalleTokenizer(Encoder()).eval()
        rows.append(("DALL-E dVAE encode, batch 1, frames/s", f"{encode_rate(dalle, 1, repeats=2):.1f}",
                     "the paper's dVAE on the CPU: ~435 ms a frame (2.3/s)"))
    return rows


def gemm_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n x n matmul in `dtype`: the ceiling MFU is measured against."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def train_step(model: torch.nn.Module, batch: torch.Tensor, autocast, hf: bool):
    """One closure running forward + loss + backward + AdamW on `batch` (B, T + 1)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    inputs = batch[:, :-1]

    def step() -> None:
        with autocast():
            # HF: its own loss path (labels shifted inside; T-1 targets); ours: the training objective
            loss = model(input_ids=inputs, labels=inputs).loss if hf else next_token_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def compare(preset: str, batch: int, seq: int, precision: str, steps: int, warmup: int, with_hf: bool) -> dict:
    """{"ours"/"hf": (tokens/s from the median step, model FLOPs per token)}; same weights, steps alternate."""
    from encoder.hf import to_hf

    config = preset_config(preset, max_seq_len=max(seq, 4098))
    torch.manual_seed(0)
    ours = Toto(config).train()
    runners = {"ours": train_step(ours, _batch(config, batch, seq), _autocast(precision), hf=False)}
    if with_hf:
        hf = to_hf(ours).train()
        runners["hf"] = train_step(hf, _batch(config, batch, seq), _autocast(precision), hf=True)
    for _ in range(warmup):
        for step in runners.values():
            step()
    times = {name: [] for name in runners}
    for _ in range(steps):
        for name, step in runners.items():
            times[name].append(_timed(step))
    per_token = flops_per_token(config, seq)
    return {name: (batch * seq / statistics.median(t), per_token) for name, t in times.items()}


def _batch(config: TotoConfig, batch: int, seq: int) -> torch.Tensor:
    return torch.randint(4, config.vocab_size, (batch, seq + 1), generator=torch.Generator().manual_seed(0))


def _autocast(precision: str):
    if precision == "fp32":
        return nullcontext
    return lambda: torch.autocast("cpu", dtype=torch.bfloat16)


def _shape(text: str) -> tuple[str, tuple[int, int]]:
    try:
        preset, shape = text.split("=")
        batch, seq = (int(v) for v in shape.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use PRESET=BATCHxSEQ, e.g. base=1x1024") from None
    return preset, (batch, seq)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--presets", nargs="+", choices=list(PRESETS), default=list(DEFAULT_SHAPES), metavar="PRESET",
                        help=f"model presets, of {', '.join(PRESETS)} (default: nano base)")
    parser.add_argument("--shape", type=_shape, action="append", default=[], metavar="PRESET=BxT",
                        help="batch x sequence per preset (default: nano=1x4098 base=1x1024; others 1x1024)")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-hf", action="store_true", help="time ours only (no transformers needed)")
    parser.add_argument("--no-dalle", action="store_true", help="skip timing the dVAE architecture (about 2 s a frame)")
    args = parser.parse_args()
    shapes = {**DEFAULT_SHAPES, **dict(args.shape)}

    peaks = {"fp32": gemm_peak(torch.float32), "bf16": gemm_peak(torch.bfloat16)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}; "
          f"GEMM peak (2048^3): fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")
    print(resolve().line("precision=auto (pre-training's default) chooses") + "\n")
    header = f"{'model':<6} {'prec':<5} {'B x T':>8} {'ours tok/s':>11} {'HF tok/s':>9} {'ours/HF':>8} {'ours MFU':>9} {'HF MFU':>7}"
    print(header + "\n" + "-" * len(header), flush=True)
    for preset in args.presets:
        batch, seq = shapes.get(preset, (1, 1024))
        for precision in args.precisions:
            r = compare(preset, batch, seq, precision, args.steps, args.warmup, not args.no_hf)
            mfu = {k: rate * per_token / 1e9 / peaks[precision] for k, (rate, per_token) in r.items()}
            hf_rate = f"{r['hf'][0]:9.0f}" if "hf" in r else f"{'-':>9}"
            ratio = f"{r['ours'][0] / r['hf'][0]:7.2f}x" if "hf" in r else f"{'-':>8}"
            hf_mfu = f"{mfu['hf']:7.0%}" if "hf" in r else f"{'-':>7}"
            print(f"{preset:<6} {precision:<5} {f'{batch}x{seq}':>8} {r['ours'][0]:11.0f} {hf_rate} {ratio} {mfu['ours']:9.0%} {hf_mfu}",
                  flush=True)
    print(f"\ntarget: ours >= {TARGET_SPEEDUP}x HF; load average at the end {os.getloadavg()[0]:.1f} "
          "(other processes on the 2 cores slow both models and make ratios noisy)")
    rows = tokenizer_rows(with_dalle=not args.no_dalle)
    if rows:
        print("\ntokenizer" + "".join(f"\n  {what:<40} {measured:>10}   (reference: {ref})" for what, measured, ref in rows))


if __name__ == "__main__":
    main()
