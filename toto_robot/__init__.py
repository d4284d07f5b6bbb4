"""toto-robot: Toto video pre-training for robot learning.

The public facade; heavy subpackages are imported only when a function needs them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from encoder.frozen import TotoEncoder

__version__ = "0.1.0"


def load_encoder(path, layer=None, pool=None, dtype="auto", device="auto") -> TotoEncoder:
    """The frozen Toto encoder exported to `path`: `load_encoder("runs/pretrain/encoder")` gives features
    (B, dim) of uint8 frames (B, H, W, 3) (see encoder.frozen.load_encoder). layer None: the middle block
    (encoder.frozen_base.DEFAULT_LAYER). An MAE export (`python pretrain/run.py objective=mae`) loads the
    same way (pool None: MVP's CLS token). dtype and device "auto" follow the hardware
    (toto_robot/compute.py): bf16 only where it is native."""
    from encoder.frozen import load_encoder  # (the facade: encoder/ imports toto_robot, so not at the top)

    chosen = {} if layer is None else {"layer": layer}
    return load_encoder(path, pool=pool, dtype=dtype, device=device, **chosen)


def make_env(task: str, **options):
    """A simulated task env: `make_env("franka_pick", image_size=224)` (see sim.EnvConfig)."""
    import sim  # (lazy: gymnasium)

    return sim.make_env(task, **options)
