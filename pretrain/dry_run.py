"""Size a cluster before renting it: memory per rank, tokens per step and compute of a run.

    python pretrain/run.py model=1b train.strategy=fsdp dry_run=true                        # 8 ranks
    python pretrain/run.py model=1b train.strategy=fsdp dry_run=true dry_run_world_size=16

Nothing is trained, read or allocated: the model is built on the meta device and the figures
come from pretrain/sizing.py (how each is counted is written there). The layout (strategy,
gradient accumulation, tokens per step) is derived exactly as the training loop derives it.
The precision is the one a GPU with bf16 would get: `auto` counts as bf16.
"""
from __future__ import annotations

from encoder import tokens as token_ids
from encoder.tokenizers.base import Tokenizer
from pretrain.config import RunConfig
from pretrain.distributed import resolve_strategy
from pretrain.sizing import GIB, PEAK_BF16_TFLOPS, count_params, flops_per_token, memory_plan
from encoder.presets import preset_config

ASSUMED_MFU = 0.4  # for the GPU-hours estimate: what a well-tuned LLaMA-style run reaches


def dry_run(cfg: RunConfig, world_size: int) -> dict:
    """Print and return the plan of `cfg` on `world_size` ranks."""
    if world_size < 1:
        raise ValueError(f"dry_run_world_size={world_size}: must be >= 1")
    train = cfg.train
    grid = cfg.tokenize.resolution // Tokenizer.downsample
    seq_len = token_ids.sequence_length(cfg.tokenize.frames, grid)
    overrides = {"max_seq_len": seq_len} | ({"rope_base": cfg.model.rope_base} if cfg.model.rope_base else {})
    config = preset_config(cfg.model.preset, **overrides)
    precision = "fp32" if train.precision == "fp32" else "bf16"
    n_params = count_params(config)
    strategy = resolve_strategy(train.strategy, n_params, world_size)
    grad_accum = train.grad_accum or max(1, round(train.batch_tokens / (train.micro_batch * seq_len * world_size)))
    step_tokens = grad_accum * train.micro_batch * world_size * seq_len
    plan = memory_plan(config, strategy, world_size, train.micro_batch, seq_len, precision, train.activation_checkpointing)
    step_flops = flops_per_token(config, seq_len) * step_tokens
    total_flops = step_flops * train.steps
    result = {
        "preset": cfg.model.preset, "params": n_params, "world_size": world_size, "strategy": strategy,
        "precision": precision, "seq_len": seq_len, "micro_batch": train.micro_batch, "grad_accum": grad_accum,
        "tokens_per_step": step_tokens, "steps": train.steps, "tokens": step_tokens * train.steps,
        "memory_gib": {"weights": plan.weights / GIB, "gradients": plan.gradients / GIB, "optimizer": plan.optimizer / GIB,
                       "fsdp_working_set": plan.fsdp_working_set / GIB, "ddp_buckets": plan.ddp_buckets / GIB,
                       "activations": plan.activations / GIB, "total": plan.total / GIB},
        "flops_per_step": step_flops, "flops": total_flops,
        "gpu_hours_at_40pct_mfu": {gpu: total_flops / (PEAK_BF16_TFLOPS[gpu] * 1e12 * ASSUMED_MFU) / 3600 for gpu in ("A100", "H100 SXM")},
    }
    print(report(result, train.activation_checkpointing))
    return result


def report(r: dict, checkpointing: bool) -> str:
    m = r["memory_gib"]
    lines = [
        f"dry run: Toto {r['preset']} ({r['params'] / 1e6:,.1f}M parameters) on {r['world_size']} ranks, {r['strategy']}, "
        f"{r['precision']}, sequences of {r['seq_len']:,} tokens",
        f"  per rank, one step (micro-batch {r['micro_batch']}, activation checkpointing {'on' if checkpointing else 'off'}):",
        f"    weights (fp32)        {m['weights']:8.2f} GiB",
        f"    gradients (fp32)      {m['gradients']:8.2f} GiB",
        f"    AdamW moments (fp32)  {m['optimizer']:8.2f} GiB",
    ]
    if r["strategy"] == "fsdp":
        lines.append(f"    FSDP gathered block   {m['fsdp_working_set']:8.2f} GiB")
    if r["strategy"] == "ddp":
        lines.append(f"    DDP gradient buckets  {m['ddp_buckets']:8.2f} GiB")
    lines += [
        f"    activations           {m['activations']:8.2f} GiB",
        f"    total                 {m['total']:8.2f} GiB  (+ CUDA context and fragmentation, typically 1-3 GiB)",
        f"  tokens per step: {r['tokens_per_step']:,} = {r['grad_accum']} accumulation x {r['micro_batch']} sequences "
        f"x {r['world_size']} ranks x {r['seq_len']:,} tokens",
        f"  train.steps={r['steps']:,}: {r['tokens'] / 1e9:,.2f}B tokens, {r['flops']:.3g} FLOPs "
        f"({r['flops_per_step']:.3g} a step)",
        "  at 40% MFU: " + ", ".join(f"{hours:,.0f} {gpu} GPU-hours" for gpu, hours in r["gpu_hours_at_40pct_mfu"].items()),
    ]
    return "\n".join(lines)
