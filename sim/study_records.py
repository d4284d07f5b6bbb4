"""A finished cell's record: all that a study's summary and plots read, in one small JSON file per cell.

Why: a long study spans sittings, and the machine of one sitting may not keep the files of the last (this project lost
a study's cell folders that way). A cell's folder (policy weights, videos, TensorBoard logs) is large and stays local;
its record is a few KB, so a study can keep its records where they survive: the representation study commits them
(records=docs/study/records). sim/compare.py counts a cell whose record matches its settings as finished, folder or
not, and remakes summary.md, compare.png and layers.png from the records alone.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from sim.policy_config import EVAL_SEED
from toto_robot.io import atomic_write

_EVAL_NAME = re.compile(r"eval(?:_seed(\d+))?\.json")  # policy_config.result_file's names (not _other_encoder)


def settings_of(args: list[str]) -> list[str]:
    """The arguments that make a cell what it is (progress bars do not)."""
    return [a for a in args if not a.startswith("progress=")]


def evaluations(run: Path) -> dict[str, dict]:
    """{episode seed: {successes, episodes, encoder_fingerprint}} for every evaluation in a run folder."""
    found = {}
    for path in sorted(run.glob("eval*.json")):
        match = _EVAL_NAME.fullmatch(path.name)
        if match:
            result = json.loads(path.read_text())
            found[match.group(1) or str(EVAL_SEED)] = {key: result.get(key) for key in ("successes", "episodes",
                                                                                           "encoder_fingerprint")}
    return found


def export_gates(export: Path) -> dict | None:
    """The cheap gates of the export a cell read (export = out/exports/<variant>_p<seed>), from the files its
    pre-training left: tokenizer stability and PSNR, the features' self-match and place read-out by layer, the final
    validation loss. A record keeps them so that later sittings can ask whether a gate predicts a draw's policies."""
    tokenizer, features = export / "tokenizer" / "metrics.json", export / "encoder" / "feature_stability.json"
    models = [export / "encoder" / f"{kind}.json" for kind in ("toto", "mae")]
    if not features.is_file():
        return None
    gates = {"features": json.loads(features.read_text())}
    if tokenizer.is_file():
        metrics = json.loads(tokenizer.read_text())
        stability = metrics.get("stability") or {}
        gates["tokenizer"] = {**{k: metrics.get(k) for k in ("psnr_db", "code_perplexity", "codebook_usage")},
                              **{k: stability.get(k) for k in ("static_flip", "wrist_static_flip", "stored_agreement")},
                              "psnr_by_source": stability.get("psnr_db")}
    for model in models:
        if model.is_file():
            gates["final_val_loss"] = json.loads(model.read_text()).get("summary", {}).get("final_val_loss")
    return gates


def from_run(run: Path, cell: dict) -> dict:
    """The record of a trained and evaluated run folder; `cell` is its cell.json (settings, training time, machine and
    how many cells ran side by side then: a time belongs to both).
    compare.py adds `export`: the pre-training overrides of the export the cell read, if it read a variant's."""
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"args": cell["args"], "episodes": cell["episodes"], "train_seconds": cell.get("train_seconds"),
            "machine": cell.get("machine"), "workers": cell.get("workers"), "env_steps": metrics[-1]["env_steps"],
            "curve": [[r["env_steps"], r["eval_success_rate"]] for r in metrics if r.get("eval_success_rate") is not None],
            "evaluations": evaluations(run)}


class Records:
    """The folder of a study's records (None: no records are kept; compare.py reads the cell folders alone)."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder else None

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def get(self, name: str, args: list[str], episodes: int, export: list[str] | None = None) -> dict | None:
        """The cell's record, or None; a record made with other settings (its own, or its export's pre-training
        overrides) is refused, as a cell folder is."""
        if self.folder is None or not self.path(name).is_file():
            return None
        record = json.loads(self.path(name).read_text())
        made = [*record["args"], *(record.get("export") or []), f"episodes={record['episodes']}"]
        asked = [*settings_of(args), *(export or []), f"episodes={episodes}"]
        if made != asked:
            old, new = sorted(set(made) - set(asked)), sorted(set(asked) - set(made))
            raise ValueError(f"{self.path(name)} was made with {old}, this comparison asks {new}: "
                             "use another records= or delete the record")
        return record

    def put(self, name: str, record: dict) -> None:
        if self.folder is not None:
            with atomic_write(self.path(name)) as tmp:
                tmp.write_text(json.dumps(record, indent=1) + "\n")
