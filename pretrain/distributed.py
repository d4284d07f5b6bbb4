"""Process-group setup and model wrapping for torchrun: DDP for small models, FSDP for big ones.

Rank and world size come from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*);
without torchrun (or with one process) training runs unwrapped. Backend: nccl on CUDA, gloo on
CPU. Every collective goes through the helpers below, which put their tensors on the rank's
device: NCCL has no CPU path, so a CPU tensor handed to it fails at the first step. The group
gets a long timeout (`setup`), and long one-rank work never sits behind a collective: the
pipeline joins its stages by file markers (pretrain/markers.py). FSDP is FSDP2
(`torch.distributed.fsdp.fully_shard`): each block of the model's ModuleLists is its own unit, then
the root. It runs on CPU with gloo in torch 2.13 (tested
with 2 processes). Full (unsharded) state dicts for checkpoints go through
`torch.distributed.checkpoint.state_dict` for every strategy, so optimizer states are keyed by
parameter name and a DDP checkpoint resumes under FSDP and vice versa.
"""
from __future__ import annotations

import contextlib
import gc
import inspect
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn
from toto_robot.compute import resolve_device

STRATEGIES = ("auto", "ddp", "fsdp")
FSDP_MIN_PARAMS = 1_000_000_000  # "auto" shards from about 1B parameters (the 1b preset): replicas no longer fit comfortably


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # True when setup() created the process group (teardown destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto", timeout_minutes: float = 60.0) -> DistInfo:
    """Join the torchrun process group if there is one (creating it if needed).

    `device` is auto|cpu|cuda|cuda:N (toto_robot.compute.resolve_device); under torchrun `auto` and
    `cuda` mean this rank's GPU, cuda:LOCAL_RANK. The backend follows the device: nccl on CUDA, gloo on CPU.
    `timeout_minutes` bounds every collective (NCCL's default, 10 min, is shorter than a full-state
    checkpoint write at 1b); RunConfig.dist_timeout_minutes sets it.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not dist.is_initialized():
        return DistInfo(device=resolve_device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    owns = False
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise ValueError(f"WORLD_SIZE={world} but MASTER_ADDR is unset: launch with torchrun --nproc_per_node=N")
        if timeout_minutes <= 0:
            raise ValueError(f"dist_timeout_minutes={timeout_minutes}: must be > 0")
        cuda = resolved.type == "cuda"
        if cuda:
            torch.cuda.set_device(resolved)
        _bind_world_defaults_before_the_group_exists()
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=timeout_minutes),
                                device_id=resolved if cuda else None)
        owns = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, resolved, owns)


def _bind_world_defaults_before_the_group_exists() -> None:
    """Import torch.distributed.nn before init_process_group, so its functions' `group=group.WORLD`
    defaults bind to None.

    Why (the cause of the rare abort at interpreter exit, "terminate called without an active
    exception"): those defaults are evaluated when the module is first imported. DDP and FSDP import it
    (through torch._dynamo) after the group exists, so ten function defaults held the world group for
    the life of the process: destroy_process_group dropped the registry's reference but could not free
    the group, its gloo threads (pt_gloo_runloop x2, gloo_tcp_loop) kept running, and the group was
    freed, or not, while the interpreter shut down. Imported first, nothing outlives teardown: the test
    checks that the group's threads are gone once `teardown` returns."""
    import torch.distributed.nn  # noqa: F401


def gloo_threads() -> list[str]:
    """Names of this process's threads that belong to a gloo process group (Linux; [] elsewhere)."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return []
    names = []
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                name = f.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
        if "gloo" in name:
            names.append(name)
    return sorted(names)


def teardown(info: DistInfo, meet: bool = True) -> None:
    """Leave the group: every rank meets first (`meet`), then destroys it together. After an error
    do not meet (the others may never come; torchrun stops them when this rank exits).

    Why the meeting: a rank should not destroy its group while a peer is still inside their last
    collective; the wait is short (callers tear down as soon as the ranks' shared work ends; one-rank
    work such as the export comes after). Why the collection: FSDP's module state holds the group in
    reference cycles; freed now, the group itself is freed by destroy_process_group, its threads
    joined while the interpreter is whole (see `_bind_world_defaults_before_the_group_exists` for the
    reference that used to keep it alive to the end)."""
    if info.owns_group and dist.is_initialized():
        if meet and info.world_size > 1:
            dist.barrier(device_ids=[info.device.index or 0] if info.device.type == "cuda" else None)
        gc.collect()
        dist.destroy_process_group()
        _release_leaked_meshes()


def _release_leaked_meshes() -> None:
    """Let go of the groups that FSDP's device meshes still hold once the model is gone.

    A `DeviceMesh` keeps its process groups in `_pg_registry`, and torch 2.13 leaks references to the
    DTensorSpecs of a sharded model (pytorch#181761, #176010): GC cannot free them, so the mesh, and the
    world group through it, outlived the model and destroy_process_group. A mesh is dead once its groups
    are destroyed; emptying its registry frees the group now, while the interpreter is whole."""
    device_mesh = sys.modules.get("torch.distributed.device_mesh")
    if device_mesh is None:  # no mesh was ever made (DDP, one process)
        return
    for obj in gc.get_objects():
        if isinstance(obj, device_mesh.DeviceMesh):
            registry = getattr(obj, "_pg_registry", None)
            if isinstance(registry, dict):
                registry.clear()


def resolve_strategy(strategy: str, n_params: int, world_size: int) -> str:
    """"single" | "ddp" | "fsdp" for a requested strategy, model size and world size."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r}: use one of {', '.join(STRATEGIES)}")
    if world_size == 1:
        return "single"
    if strategy == "auto":
        return "fsdp" if n_params >= FSDP_MIN_PARAMS else "ddp"
    return strategy


def wrap(model: nn.Module, strategy: str, info: DistInfo, precision: str = "fp32") -> nn.Module:
    """The module to call for training. FSDP shards `model` in place; DDP returns a wrapper.

    With precision bf16, FSDP gathers and computes in bf16 and reduces gradients in fp32 (its
    mixed-precision policy); the sharded weights and AdamW stay fp32."""
    if strategy == "single":
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [info.local_rank] if info.device.type == "cuda" else None
        # the only buffers are RoPE tables, equal on every rank: no per-forward broadcast
        newer = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
        quiet = {"forward_sync_buffers": False} if newer else {"broadcast_buffers": False}
        return DistributedDataParallel(model, device_ids=ids, **quiet)
    if strategy == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if precision == "bf16" \
            else MixedPrecisionPolicy()
        for blocks in [m for m in model.modules() if isinstance(m, nn.ModuleList)]:
            for block in blocks:
                fully_shard(block, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        return model
    raise ValueError(f"strategy={strategy!r}: expected single, ddp or fsdp")


@contextlib.contextmanager
def gradient_sync(wrapped: nn.Module, strategy: str, sync: bool) -> Iterator[None]:
    """Skip the gradient all-reduce on accumulation micro-steps (sync=False); the last one syncs."""
    if strategy == "ddp" and not sync:
        with wrapped.no_sync():
            yield
    elif strategy == "fsdp":
        wrapped.set_requires_gradient_sync(sync)
        yield
    else:
        yield


def sum_over_ranks(values: torch.Tensor | Sequence[float], info: DistInfo) -> list[float]:
    """Element-wise sum over ranks of `values` (numbers, or a 1-D tensor on any device), as floats.

    The only way numbers cross ranks here: the reduction tensor is built on the rank's device
    (NCCL reduces device tensors only) in float64 (token counts stay exact to 2^53), and one
    collective carries all the values.
    """
    tensor = values.detach() if isinstance(values, torch.Tensor) else torch.tensor(list(values))
    tensor = tensor.to(device=info.device, dtype=torch.float64).reshape(-1)
    if info.world_size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_object(obj, info: DistInfo):
    """Rank 0's `obj` on every rank (pickled through a byte tensor on the rank's device)."""
    if info.world_size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=info.device)
    return box[0]


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Unsharded (model, optimizer) state dicts on CPU; complete on rank 0 (collective call).

    `model` is the unwrapped module (for FSDP the sharded module itself)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options), get_optimizer_state_dict(model, optimizer, options=options)


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict, optim_state: dict, strategy: str) -> None:
    """Inverse of `full_state`; with FSDP rank 0's dicts are broadcast and sharded."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=strategy == "fsdp")
    set_model_state_dict(model, model_state, options=options)
    set_optimizer_state_dict(model, optimizer, optim_state, options=options)
