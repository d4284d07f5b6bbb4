"""Training metrics: a JSONL line per logged step, TensorBoard scalars, a loss-curve PNG.

    out_dir/metrics.jsonl   {"step", "loss", "lr", "grad_norm", "tokens_seen", "tokens_per_s"[, "val_loss"]}
                            (tokens: whole sequences, all ranks; tokens_per_s: training time since
                            the previous line, validation and checkpoint time excluded;
                            "tflops_per_device": model FLOPs as pretrain/sizing.py counts them,
                            "mfu" against train.peak_tflops or a known GPU's bf16 peak,
                            "gpu_mem_peak_gib" on CUDA)
    out_dir/tensorboard/    train/* and val/* scalars against the step
    out_dir/loss_curve.png  train and validation loss against steps and against tokens seen
    out_dir/val_positions.json, .png   the last validation's loss at each position of a row, per
                            validation set, and its mean per frame (paper Fig. 10): how much
                            each later frame is predicted from the earlier ones

On resume from step k the JSONL is cut back to steps <= k and TensorBoard purges later events,
so the files read as one run even after a crash past the last checkpoint. Only rank 0 writes
(the logger of other ranks is a no-op).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from toto_robot.io import TEMP_SUFFIX, atomic_write, save_figure

JSONL_NAME = "metrics.jsonl"
PLOT_NAME = "loss_curve.png"
POSITIONS_NAME = "val_positions"
TB_DIR = "tensorboard"


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Records of a metrics file; a line cut short by a kill is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _smooth(values: list[float], weight: float = 0.8) -> list[float]:
    """Bias-corrected exponential moving average (TensorBoard's smoothing): small batches are noisy."""
    out, average = [], 0.0
    for i, value in enumerate(values, 1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**i))
    return out


class MetricsLogger:
    def __init__(self, out_dir: str | os.PathLike, *, enabled: bool = True, resume_step: int = 0):
        self.enabled = enabled
        self.out_dir = Path(out_dir)
        self.history: list[dict] = []
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.out_dir / JSONL_NAME
        for name in (JSONL_NAME, PLOT_NAME):  # temp files of a write killed mid-way
            for stale in self.out_dir.glob(f".{name}.*{TEMP_SUFFIX}"):
                stale.unlink(missing_ok=True)
        self.history = [r for r in read_jsonl(self.jsonl_path) if r.get("step", 0) <= resume_step]
        with atomic_write(self.jsonl_path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.history))
        self._jsonl = open(self.jsonl_path, "a")
        from torch.utils.tensorboard import SummaryWriter

        self._tb = SummaryWriter(str(self.out_dir / TB_DIR), purge_step=resume_step + 1)

    def log(self, record: dict) -> None:
        """Append one record (must hold "step"); numbers also go to TensorBoard."""
        if not self.enabled:
            return
        self.history.append(record)
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                tag = f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}"
                self._tb.add_scalar(tag, value, record["step"])
        self._tb.flush()

    def plot(self) -> Path | None:
        """Redraw the loss-curve PNG from the history (atomically)."""
        if not self.enabled or not self.history:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        train = [r for r in self.history if "loss" in r]
        val = [r for r in self.history if "val_loss" in r]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for ax, x in zip(axes, ("step", "tokens_seen")):
            ax.plot([r[x] for r in train], [r["loss"] for r in train], label="train", lw=0.8, alpha=0.4, color="C0")
            ax.plot([r[x] for r in train], _smooth([r["loss"] for r in train]), label="train (smoothed)", lw=1.5, color="C0")
            if val:
                ax.plot([r[x] for r in val], [r["val_loss"] for r in val], "o-", label="val", ms=3, color="C1")
            for i, key in enumerate(sorted({k for r in val for k in r if k.startswith("val_loss/")})):
                points = [r for r in val if key in r]
                ax.plot([r[x] for r in points], [r[key] for r in points], "--", lw=1, color=f"C{i + 2}",
                        label=f"val {key.split('/', 1)[1]}")
            ax.set_xlabel("tokens seen" if x == "tokens_seen" else "step")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("next-token loss (nats)")
        axes[0].legend()
        fig.tight_layout()
        return save_figure(fig, self.out_dir / PLOT_NAME)

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()


def frame_means(per_position: list[float], frame_tokens: int) -> list[float]:
    """Mean loss of each frame's tokens. Target position p predicts token p+1 of the row, so frame
    k's tokens (ids 1 + k*g*g ...) are targets k*g*g .. (k+1)*g*g - 1; the end token is left out."""
    import numpy as np

    values = np.asarray(per_position, dtype=float)
    frames = len(values) // frame_tokens
    return [float(np.nanmean(values[k * frame_tokens:(k + 1) * frame_tokens])) for k in range(frames)]


def write_positions(out_dir: str | os.PathLike, step: int, frame_tokens: int | None, sets: dict) -> Path:
    """val_positions.json ({"step", "frame_tokens", "sets": {name: {"per_position", "per_frame"}}})
    and its plot, from the per-position validation losses of each set."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"step": step, "frame_tokens": frame_tokens, "sets": {
        name: {"per_position": values, "per_frame": frame_means(values, frame_tokens) if frame_tokens else None}
        for name, values in sets.items()}}
    with atomic_write(out_dir / f"{POSITIONS_NAME}.json") as tmp:
        tmp.write_text(json.dumps(record))
    return plot_positions(record, out_dir / f"{POSITIONS_NAME}.png")


def plot_positions(record: dict, path: Path) -> Path:
    """Left: loss at each position (a moving mean over a quarter frame), frames marked. Right: mean per frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    frame_tokens = record["frame_tokens"]
    fig, axes = plt.subplots(1, 2 if frame_tokens else 1, figsize=(11 if frame_tokens else 6, 4), squeeze=False)
    window = max(1, (frame_tokens or 64) // 4)
    for i, (name, values) in enumerate(record["sets"].items()):
        v = np.nan_to_num(np.asarray(values["per_position"], dtype=float), nan=np.nanmean(values["per_position"]))
        smooth = np.convolve(v, np.ones(window) / window, mode="valid")
        axes[0, 0].plot(np.arange(len(smooth)) + window // 2, smooth, lw=1, color=f"C{i}", label=name)
        if frame_tokens:
            axes[0, 1].plot(np.arange(1, len(values["per_frame"]) + 1), values["per_frame"], "o-", ms=3, color=f"C{i}", label=name)
    if frame_tokens:
        for boundary in range(frame_tokens, len(v), frame_tokens):
            axes[0, 0].axvline(boundary, color="0.85", lw=0.5, zorder=0)
        axes[0, 1].set(xlabel="frame", ylabel="mean loss of its tokens (nats)", title="per frame")
        axes[0, 1].grid(alpha=0.3)
    axes[0, 0].set(xlabel="position in the row (token)", ylabel="validation loss (nats)",
                   title=f"loss by position at step {record['step']} (moving mean over {window})")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
