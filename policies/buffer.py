"""The aggregated DAgger/BC dataset: (features, proprio, expert action) rows, growing every round.

Rows hold *features*, not observations: they were computed once by a frozen encoder when the
sample was stored (policies/features.py), so training never re-runs the encoder and a round's
cost is rollouts + a small MLP. Each row also records the round that collected it, so a resumed
run can drop rows of a round whose training never finished (see policies/dagger.py).

Saved as one .npz written atomically (toto_robot.io.atomic_write): an interrupted run finds
either the previous or the new complete file, never a truncated one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from toto_robot.io import atomic_write
from toto_robot.checkpoint import CheckpointError

FIELDS = ("features", "proprio", "actions", "rounds")


class AggregatedBuffer:
    """Append-only arrays; `add` takes a batch of rows, `arrays()` the concatenation so far."""

    def __init__(self):
        self._chunks: dict[str, list[np.ndarray]] = {k: [] for k in FIELDS}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, features, proprio, actions, round_index: int) -> None:
        """Append B rows: features (B, F), proprio (B, P) (P may be 0), expert actions (B, A)."""
        f = np.asarray(features, dtype=np.float32)
        p = np.asarray(proprio, dtype=np.float32).reshape(len(f), -1)
        a = np.asarray(actions, dtype=np.float32)
        if f.ndim != 2 or a.ndim != 2 or not len(f) == len(p) == len(a):
            raise ValueError(f"rows must be (B, F), (B, P), (B, A) with one B; got {f.shape}, {p.shape}, {a.shape}")
        if self._size:  # against the first chunk: concatenating here made every add copy the whole buffer
            for name, new in (("features", f), ("proprio", p), ("actions", a)):
                old = self._chunks[name][0].shape[1:]
                if new.shape[1:] != old:
                    raise ValueError(f"{name} rows of shape {new.shape[1:]} do not match the buffer's {old}")
        for name, value in zip(FIELDS, (f, p, a, np.full(len(f), round_index, dtype=np.int32))):
            self._chunks[name].append(value)
        self._size += len(f)

    def arrays(self) -> dict[str, np.ndarray]:
        """{field: all rows} (concatenated once, then cached as a single chunk)."""
        if not self._size:
            raise ValueError("the buffer is empty")
        for name, chunks in self._chunks.items():
            if len(chunks) > 1:
                self._chunks[name] = [np.concatenate(chunks)]
        return {name: chunks[0] for name, chunks in self._chunks.items()}

    def keep_rounds(self, last_round: int) -> int:
        """Drop rows collected after round `last_round`; return how many were dropped."""
        if not self._size:
            return 0
        data = self.arrays()
        keep = data["rounds"] <= last_round
        dropped = int((~keep).sum())
        if dropped:
            self._chunks = {name: [value[keep]] for name, value in data.items()}
            self._size = int(keep.sum())
        return dropped

    def save(self, path) -> Path:
        """Write all rows to `path` (.npz) atomically; return the path."""
        path = Path(path)
        with atomic_write(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a bare name
            np.savez(f, **self.arrays())
        return path

    @classmethod
    def load(cls, path) -> AggregatedBuffer:
        """The buffer saved at `path`."""
        import zipfile


        buffer = cls()
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                missing = [k for k in FIELDS if k not in data]
                if missing:
                    raise CheckpointError(f"{path} is not an aggregated buffer (missing {missing})")
                buffer.add(data["features"], data["proprio"], data["actions"], 0)
                buffer._chunks["rounds"] = [data["rounds"].astype(np.int32)]
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
            if isinstance(error, CheckpointError):
                raise
            what = str(error).splitlines()[0] if str(error) else "truncated"
            raise CheckpointError(f"{path} is unreadable ({type(error).__name__}: {what}): "
                                  "delete the run folder to start over, or restore the file") from None
        return buffer
