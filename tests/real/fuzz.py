"""Fuzzed policy actions shared by the envelope test and the franky-sim test."""
import numpy as np


def fuzzed_action(rng, walk: np.ndarray):
    """(action, hold reason or None): malformed kinds, huge values and steady walks toward limits."""
    kind = rng.integers(10)
    if kind == 0:
        a = rng.normal(0, 0.05, 7)
        a[rng.integers(7)] = np.nan
        return a, "not_finite"
    if kind == 1:
        return np.append(rng.normal(0, 0.05, 7), rng.choice([np.inf, -np.inf, np.nan])), "not_finite"
    if kind == 2:
        return rng.normal(0, 0.05, rng.choice([0, 1, 6, 9, 14])), "wrong_length"
    if kind == 3:
        return [rng.normal(0, 0.05, 7), rng.normal(0, 0.05, 7)][: rng.integers(1, 3)], "wrong_length"
    if kind == 4:
        return [None, "0.1", {"q": 1}, [0.1] * 6 + [[0.1]], [1j] * 7, [True] * 7][rng.integers(6)], "not_numeric"
    if kind == 5:
        return rng.normal(0, 1e6, 7), None  # huge: clipped to the step bound
    if kind == 6:
        return np.append(rng.normal(0, 0.05, 7), rng.normal(0.5, 3.0)), None  # gripper outside [0, 1]
    return walk * rng.uniform(0.5, 3.0), None  # keep pushing one way: reaches limits and box faces
