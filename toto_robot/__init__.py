"""toto-robot: Toto video pre-training for robot learning.

The public facade; heavy subpackages are imported only when a function needs them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from encoder.frozen import TotoEncoder

__version__ = "0.1.0"


def load_encoder(path, layer="mid", pool=None, dtype="auto", device="auto") -> TotoEncoder:
    """The frozen Toto encoder exported to `path`: `load_encoder("runs/pretrain/encoder", layer="mid")`
    gives features (B, dim) of uint8 frames (B, H, W, 3) (see encoder.frozen.load_encoder). An MAE
    export (`python pretrain/run.py objective=mae`) loads the same way (pool None: MVP's CLS token). dtype and
    device "auto" follow the hardware (toto_robot/compute.py): bf16 only where it is native."""
    from encoder.frozen import load_encoder

    return load_encoder(path, layer=layer, pool=pool, dtype=dtype, device=device)


def make_env(task: str, **options):
    """A simulated task env: `make_env("franka_pick", image_size=224)` (see sim.EnvConfig)."""
    import sim

    return sim.make_env(task, **options)
