"""Bad media are never fatal: readers raise `BadMediaError`, callers count it in a `SkipReport`
and move on, and a run ends with a short report of what was skipped and why."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path


class BadMediaError(Exception):
    """A file that cannot be used. `reason` is a short category (the SkipReport key)."""

    def __init__(self, path: str | os.PathLike, reason: str, detail: str = ""):
        self.path, self.reason, self.detail = Path(path), reason, detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))

    def __reduce__(self):  # picklable, so decode workers can hand it back (pretrain/media_loader.py)
        return type(self), (self.path, self.reason, self.detail)


class SkipReport:
    """Counts skipped files by reason and keeps a few example paths of each for the report."""

    def __init__(self, examples: int = 3):
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        self.max_examples = examples

    def add(self, error_or_path, reason: str | None = None) -> None:
        """Count a `BadMediaError`, or a (path, reason) pair."""
        if isinstance(error_or_path, BadMediaError):
            path, reason = error_or_path.path, error_or_path.reason
        else:
            path = error_or_path
        self.counts[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < self.max_examples:
            shown.append(str(path))

    def merge(self, other: SkipReport) -> None:
        """Add another report's counts and examples (e.g. one chunk's into the run's)."""
        self.counts.update(other.counts)
        for reason, paths in other.examples.items():
            shown = self.examples.setdefault(reason, [])
            shown.extend(paths[: self.max_examples - len(shown)])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def report(self) -> str:
        if not self.total:
            return "skipped files: none"
        lines = [f"skipped files: {self.total}"]
        for reason, count in sorted(self.counts.items(), key=lambda item: -item[1]):
            examples = ", ".join(self.examples.get(reason, []))
            lines.append(f"  {reason}: {count}" + (f" (e.g. {examples})" if examples else ""))
        return "\n".join(lines)

    def print(self) -> None:
        print(self.report())
