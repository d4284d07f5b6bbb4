"""Where a network runs and in which precision: one decision, taken from the hardware, for every stage.

Every entry point that runs a network (tokenizer training, tokenization, pre-training, probes,
policy feature extraction, real BC, the policy node, the benchmarks) takes `device` and a
precision (`precision` or `dtype`) and resolves them here, so a default is never one machine's:

- device `auto`: CUDA when a GPU is visible (`cuda:<local rank>` under torchrun), else the CPU;
  `cpu`, `cuda` and `cuda:N` are taken as given (and checked). Under torchrun an explicit `cuda:N`
  is the base of the launch's GPUs: rank r runs on cuda:(N + local rank r), so two 4-rank jobs can
  share an 8-GPU node (`device=cuda:0` and `device=cuda:4`); before, every rank took cuda:N.
- precision `auto`: bf16 only where it is native: a CUDA device with bf16 support, or a CPU whose
  ATen kernels run at AVX-512 level with AVX512-BF16 or AMX units that oneDNN may use. Elsewhere
  fp32: on an AVX2-only CPU bf16 is emulated and a matmul runs ~50x slower than in fp32.
  `fp32` and `bf16` are taken as given: an explicit choice always wins.

The CPU check is a capability query, made once per process. It reads what torch itself will use,
so it follows ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA (how an AMX machine emulates an AVX2 one).
torch is imported where it is used, so config schemas (real/config.py) can name the choices without it.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16")
DEVICE_HELP = "auto, cpu, cuda or cuda:N"
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")  # what a device setting may say (whether it exists is checked on use)
_PRECISION_NAMES = {"auto": "auto", "fp32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16"}


@functools.lru_cache(maxsize=None)
def cpu_bf16() -> tuple[bool, str]:
    """(native, why): whether this process's CPU kernels run bf16 matmuls natively."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()  # "DEFAULT", "AVX2", "AVX512", "ZVECTOR", "SVE256", ...
    if capability != "AVX512":
        return False, f"CPU kernels at {capability} level, no native bf16: bf16 would be emulated"
    units = [name for name, query in (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
             if getattr(torch.cpu, query, lambda: False)()]
    if not units:
        return False, "AVX-512 CPU without AVX512-BF16 or AMX: bf16 would be emulated"
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False, f"CPU has {'/'.join(units)} but oneDNN may not use it (ONEDNN_MAX_CPU_ISA): bf16 would be emulated"
    return True, f"CPU with native bf16 ({'/'.join(units)})"


def resolve_device(device: str | torch.device = "auto", local_rank: int | None = None) -> torch.device:
    """`auto` -> cuda:<local_rank> (or the current GPU) when CUDA is available, else cpu; others checked."""
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str) or not DEVICE_PATTERN.fullmatch(device):
        raise ValueError(f"device={device!r}: use {DEVICE_HELP}")
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", torch.cuda.current_device() if local_rank is None else local_rank)
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but no CUDA device is visible (torch.cuda.is_available() is False): "
                         "use device=auto or device=cpu")
    if ":" in device:  # under torchrun, N is the base of this launch's GPUs
        index = int(device.split(":")[1]) + (local_rank or 0)
    else:
        index = torch.cuda.current_device() if local_rank is None else local_rank
    if index >= torch.cuda.device_count():
        rank = f" (the base {device} + local rank {local_rank})" if ":" in device and local_rank else ""
        raise ValueError(f"device={device!r} puts this rank on cuda:{index}{rank} but only {torch.cuda.device_count()} "
                         "CUDA device(s) are visible")
    return torch.device("cuda", index)


def precision_name(precision) -> str:
    """'auto' | 'fp32' | 'bf16' for a precision or dtype as users write it (a torch dtype too)."""
    name = precision if isinstance(precision, str) else str(precision).removeprefix("torch.")  # torch.bfloat16 -> bfloat16
    if name not in _PRECISION_NAMES:
        raise ValueError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return _PRECISION_NAMES[name]


def resolve_precision(precision, device: torch.device) -> tuple[str, str]:
    """('fp32' | 'bf16', why) for a requested precision on `device`."""
    import torch

    name = precision_name(precision)
    if name != "auto":
        return name, "asked for"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"auto: {torch.cuda.get_device_name(device)} supports bf16"
        return "fp32", f"auto: {torch.cuda.get_device_name(device)} has no bf16"
    native, why = cpu_bf16()
    return ("bf16" if native else "fp32"), f"auto: {why}"


@dataclass(frozen=True)
class Compute:
    """A resolved (device, precision) with the reason, as one stage uses it."""

    device: torch.device
    precision: str  # "fp32" | "bf16"
    why: str

    @property
    def dtype(self) -> torch.dtype:
        import torch

        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    def autocast(self):
        """bf16 autocast when precision is bf16 (weights stay fp32), else nothing."""
        import torch

        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def line(self, who: str) -> str:
        return f"{who}: device {self.device}, precision {self.precision} ({self.why})"

    def announce(self, who: str) -> "Compute":
        """Print the one line every entry point gives about its choice; returns self."""
        print(self.line(who), flush=True)
        return self


def resolve(device="auto", precision="auto", local_rank: int | None = None) -> Compute:
    """The device and precision a stage runs with (see the module docstring for the rules)."""
    resolved = resolve_device(device, local_rank)
    name, why = resolve_precision(precision, resolved)
    if name == "bf16" and why == "asked for" and resolved.type == "cpu" and not cpu_bf16()[0]:
        why = "asked for; " + cpu_bf16()[1]
    return Compute(resolved, name, why)



@functools.lru_cache(maxsize=None)
def machine() -> str:
    """One line naming the CPU a figure was measured on (model, cores, kernel level, native bf16 or not): a study's
    records keep it, because a timing (and an export's exact weights) belongs to a machine class."""
    from pathlib import Path

    import torch

    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    return f"{model}, {usable_cores()} cores, {torch.backends.cpu.get_cpu_capability()}, {cpu_bf16()[1]}"


def usable_cores() -> int:
    """The cores this process may use: its affinity where the OS tells it (a batch scheduler's or taskset's share),
    which os.cpu_count() ignores."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
