"""Choose MuJoCo's offscreen GL backend before mujoco is imported.

MuJoCo reads MUJOCO_GL once, at import. On a headless CPU machine EGL (Mesa) is the fast choice;
OSMesa is the fallback. A user's explicit MUJOCO_GL always wins.
"""
from __future__ import annotations

import ctypes
import os

DEBIAN_HINT = (
    "offscreen rendering needs EGL or OSMesa: "
    "apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 (EGL) or libosmesa6 (OSMesa), "
    "and import sim before mujoco (or export MUJOCO_GL=egl)"
)

_CANDIDATES = (("egl", ("libEGL.so.1", "libEGL.so")), ("osmesa", ("libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so")))


def _loadable(names: tuple[str, ...]) -> bool:
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def choose_backend() -> str | None:
    """Set MUJOCO_GL (unless the user did) to the first loadable backend; None if none loads."""
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    for backend, libraries in _CANDIDATES:
        if _loadable(libraries):
            os.environ["MUJOCO_GL"] = backend
            if backend == "osmesa":
                os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
            else:
                os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
            return backend
    return None


class RenderingUnavailable(RuntimeError):
    """No offscreen GL context could be made; the message names the packages to install."""
