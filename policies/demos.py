"""Recorded demonstrations (robomimic-schema HDF5, toto_robot/demos.py) as policy training rows.

`python sim/record.py` writes expert episodes in the schema robomimic reads; this turns a file of
them into an `AggregatedBuffer` of (features, proprio, action) rows, features computed once by the
run's feature provider, exactly like rows collected online. BC from a file is then the same fit
as BC from live expert rollouts, and DAgger can start from the file instead of a round of expert
rollouts (policies.dagger.train_dagger's `demos`).
"""
from __future__ import annotations

import os

import numpy as np

from policies.buffer import AggregatedBuffer
from policies.features import FeatureProvider
from toto_robot.io import atomic_write


def demo_buffer(path: str | os.PathLike, provider: FeatureProvider, *, successful_only: bool = True,
                chunk: int = 256) -> tuple[AggregatedBuffer, dict]:
    """(buffer of every demo sample as round 0, the file's env_args). `successful_only` drops failed demos.

    A file without the observation keys the provider and the actor need is one ValueError line.
    """
    from toto_robot.demos import read_demo_file  # (lazy: h5py)

    keys = {provider.key, "proprio"}
    env_args, demos = read_demo_file(path, obs_keys=None)
    buffer = AggregatedBuffer()
    kept = [d for d in demos if d.success or not successful_only]
    if not kept:
        raise ValueError(f"{path}: no {'successful ' if successful_only else ''}demos to learn from ({len(demos)} in the file)")
    for demo in kept:
        missing = sorted(k for k in keys if k not in demo.obs and not (k == "state" and len(demo.states)))
        if missing:
            raise ValueError(f"{path}: demos have obs {sorted(demo.obs)}, the policy needs {missing}: record with obs_mode "
                             f"including {'+'.join(missing)}")
        obs = {**demo.obs, "state": demo.states}
        for start in range(0, demo.num_samples, chunk):
            part = {k: np.asarray(v[start:start + chunk]) for k, v in obs.items() if k in keys}
            buffer.add(provider(part), part["proprio"].astype(np.float32), demo.actions[start:start + chunk].astype(np.float32), 0)
    return buffer, env_args


def cached_demo_buffer(path, provider: FeatureProvider, spec, *, successful_only: bool = True, cache=None) -> AggregatedBuffer:
    """`demo_buffer(path, provider)` rows, cached in `cache` (.npz + .json key, key written last).

    The key is what the rows depend on: the demo file's identity, and the encoder's weights and
    settings (`spec`, an EncoderSpec). A rerun on the same file and encoder only repeats the fit.
    """
    import json
    from dataclasses import asdict
    from pathlib import Path


    data = Path(path)
    encoder = getattr(provider, "encoder", None)
    weights = Path(spec.path).expanduser().resolve() / "toto.safetensors"
    key = {"data": str(data.resolve()), "size": data.stat().st_size, "mtime_ns": data.stat().st_mtime_ns,
           "encoder": {**asdict(spec), "path": str(weights.parent), "device": None, "batch_size": None},
           "weights_mtime_ns": weights.stat().st_mtime_ns if weights.is_file() else None,
           "layer": getattr(encoder, "layer", None), "resolution": getattr(encoder, "resolution", None),
           "successful_only": successful_only}
    if cache is not None:
        cache = Path(cache)
        npz, meta = cache.with_suffix(".npz"), cache.with_suffix(".json")
        if meta.is_file() and npz.is_file() and json.loads(meta.read_text()) == key:
            return AggregatedBuffer.load(npz)
    buffer, _ = demo_buffer(data, provider, successful_only=successful_only)
    if cache is not None:
        meta.unlink(missing_ok=True)  # the key goes stale first, then the rows change
        buffer.save(npz)
        with atomic_write(meta) as tmp:
            tmp.write_text(json.dumps(key))
    return buffer
