"""Device and precision choice (toto_robot/compute.py): bf16 only where the hardware runs it natively,
an explicit choice always wins, and CUDA requests fail in one line where there is no GPU."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from toto_robot import compute


@pytest.fixture
def cpu(monkeypatch):
    """Stub the capability queries compute.cpu_bf16 reads; returns a setter."""

    def set_cpu(capability: str, amx: bool = False, avx512_bf16: bool = False, onednn_bf16: bool = True):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn_bf16, raising=False)
        compute.cpu_bf16.cache_clear()

    yield set_cpu
    compute.cpu_bf16.cache_clear()


@pytest.mark.parametrize("machine", [dict(capability="AVX2"),  # AMD EPYC-class: bf16 emulated
                                     dict(capability="DEFAULT"),
                                     dict(capability="AVX512"),  # Skylake-class: AVX-512 without bf16 units
                                     dict(capability="AVX512", amx=True, onednn_bf16=False)])  # oneDNN capped
def test_auto_is_fp32_without_native_bf16(cpu, machine):
    cpu(**machine)
    chosen = compute.resolve("cpu", "auto")
    assert chosen.precision == "fp32" and chosen.dtype == torch.float32
    assert "emulated" in chosen.why and chosen.why.startswith("auto")


@pytest.mark.parametrize("units", [dict(amx=True), dict(avx512_bf16=True)])
def test_auto_is_bf16_on_a_cpu_with_native_bf16(cpu, units):
    cpu("AVX512", **units)
    chosen = compute.resolve("cpu", "auto")
    assert chosen.precision == "bf16" and chosen.dtype == torch.bfloat16 and "native" in chosen.why


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("asked, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16), (torch.bfloat16, torch.bfloat16)])
def test_an_explicit_precision_always_wins(cpu, native, asked, dtype):
    cpu("AVX512" if native else "AVX2", amx=native)
    chosen = compute.resolve("cpu", asked)
    assert chosen.dtype == dtype and chosen.why.startswith("asked for")
    if dtype == torch.bfloat16 and not native:
        assert "emulated" in chosen.why  # the line says what the user is in for


def test_the_capability_is_queried_once_per_process(cpu, monkeypatch):
    cpu("AVX2")
    calls = []
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: calls.append(1) or "AVX2")
    for _ in range(3):
        compute.resolve("cpu", "auto")
    assert len(calls) == 1


def test_the_emulated_avx2_machine_resolves_to_fp32():
    """A real process with ATen and oneDNN capped at AVX2 (how an AMX machine stands in for an AVX2 one)."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", "from toto_robot.compute import resolve; print(resolve().line('x'))"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out.startswith("x: device cpu, precision fp32 (auto: ") and "emulated" in out, out


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "CPU", "", 3])
def test_a_bad_device_is_one_line(bad):
    with pytest.raises(ValueError, match="use auto, cpu, cuda or cuda:N") as error:
        compute.resolve_device(bad)
    assert "\n" not in str(error.value)


def test_bad_precision_is_one_line():
    with pytest.raises(ValueError, match="use one of auto, fp32, bf16"):
        compute.resolve("cpu", "fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error; this machine has a GPU")
@pytest.mark.parametrize("asked", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_says_so(asked):
    assert compute.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device is visible"):
        compute.resolve_device(asked)


@pytest.fixture
def two_gpus(monkeypatch):
    """A stand-in CUDA runtime with two devices, one without bf16 support (as a V100 has none)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "stand-in GPU")
    support = {"bf16": True}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: support["bf16"])
    return support


def test_auto_device_is_the_gpu_and_the_ranks_own_under_torchrun(two_gpus):
    assert compute.resolve_device("auto") == torch.device("cuda", 0)
    assert compute.resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert compute.resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert compute.resolve_device("cpu") == torch.device("cpu")  # explicit wins over the GPU
    with pytest.raises(ValueError, match="only 2 CUDA device"):
        compute.resolve_device("cuda:2")


def test_auto_precision_on_a_gpu_follows_its_bf16_support(two_gpus):
    assert compute.resolve("auto", "auto").precision == "bf16"
    two_gpus["bf16"] = False
    chosen = compute.resolve("cuda:1", "auto")
    assert chosen.precision == "fp32" and chosen.device == torch.device("cuda", 1) and "no bf16" in chosen.why


def test_autocast_follows_the_precision():
    with compute.Compute(torch.device("cpu"), "bf16", "asked for").autocast():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    with compute.Compute(torch.device("cpu"), "fp32", "asked for").autocast():
        assert not torch.is_autocast_enabled("cpu")


def test_an_explicit_cuda_index_under_torchrun_is_the_base_of_the_launchs_gpus(monkeypatch):
    import torch

    from toto_robot.compute import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert resolve_device("cuda:4", local_rank=2) == torch.device("cuda", 6)
    assert resolve_device("cuda:0", local_rank=3) == torch.device("cuda", 3)
    assert resolve_device("cuda:3") == torch.device("cuda", 3)  # no launcher: as given
    assert resolve_device("cuda", local_rank=5) == torch.device("cuda", 5)
    with pytest.raises(ValueError, match=r"cuda:9 \(the base cuda:4 \+ local rank 5\) but only 8"):
        resolve_device("cuda:4", local_rank=5)


def test_torchrun_ranks_with_an_explicit_cuda_index_get_their_own_gpus(monkeypatch):
    """pretrain.distributed.setup under the launcher's environment: rank 1 of a launch at cuda:4 joins on cuda:5."""
    import torch
    import torch.distributed as dist

    from pretrain import distributed

    chosen = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: chosen.setdefault("set", d))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: chosen.update(backend=backend, **kw))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(key, value)
    info = distributed.setup("cuda:4")
    assert info.device == torch.device("cuda", 5) and chosen["set"] == torch.device("cuda", 5)
    assert chosen["backend"] == "nccl" and chosen["device_id"] == torch.device("cuda", 5)
