"""The settings of `python -m encoder.probe`: one structured config, so a misspelt key or a wrongly
typed value is a one-line hydra error. Group `probe=default|paper` (encoder/conf/probe/) only
sets values of `train`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from toto_robot.run_paths import encoder_export

EMBEDDED_IMAGES, EMBEDDED_VIDEOS = "digits", "robot"


@dataclass
class TrainSettings:
    """How every probe head is trained on the cached features (AdamW, warm-up then cosine)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3  # attention heads
    # The linear head (BatchNorm'd mean vectors) needs a larger step: at 1e-3 it still underfits after
    # 30 epochs and would understate average pooling in the Table 5 comparison; 1e-2 fits
    # (docs/benchmarks.md, measurements behind defaults). null: `lr`.
    linear_lr: Optional[float] = 1e-2
    weight_decay: float = 0.05
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_epochs: int = 2
    label_smoothing: float = 0.0
    dropout: float = 0.0
    attention_heads: int = 1  # heads of the attention pool (the paper's Table 5 probe: 1)
    mlp_hidden: Optional[int] = None  # attention_mlp hidden width; null: 2 * dim


@dataclass
class ImageData:
    source: Optional[str] = EMBEDDED_IMAGES  # "digits" (sklearn, embedded) or an ImageFolder root; null: skip
    val_fraction: float = 0.2  # when the folder has no train/ + val/ split of its own
    limit: Optional[int] = None  # at most this many images (per split for a pre-split folder)


@dataclass
class VideoData:
    source: Optional[str] = EMBEDDED_VIDEOS  # "robot" (sim episodes, embedded) or a path,label CSV; null: skip
    val_csv: Optional[str] = None  # a separate validation CSV (Kinetics val); null: split `source`
    root: Optional[str] = None  # CSV paths are relative to this (default: the CSV's folder)
    frames: Optional[int] = None  # frames a clip; null: 16 for a CSV (paper), 8 for the robot clips
    stride: int = 4  # every 4th frame (lowered for short videos, see toto_robot/media/clips.py)
    train_clips: Optional[int] = None  # random clips per training video; null: 1 for a CSV, 2 for robot
    val_fraction: float = 0.3
    limit: Optional[int] = None  # at most this many videos (per CSV)
    cache_dir: str = "runs/cache/probe_robot"  # robot episodes are recorded here once
    episodes_per_task: int = 20
    robot_seed: int = 1000  # episode seeds 1000..: not the pre-training corpus's 0..


@dataclass
class ProbeConfig:
    encoder: str = encoder_export()  # what `python pretrain/run.py` exports
    layers: Optional[List[str]] = None  # null: every layer 1..n_layers; or e.g. [1,3], [mid], [-1], [0.5]
    probes: List[str] = field(default_factory=lambda: ["linear", "attention", "attention_mlp"])
    best_by: str = "attention"  # the probe whose best layer is "the" best layer (paper Fig. 4)
    token_grid: Optional[int] = 8  # attention probes read tokens average-pooled to this grid; null: all
    token_frames: Optional[int] = 4  # ... and to this many time steps for video; null: all frames
    batch_frames: int = 64  # frames per encoder forward (64 images, 8 clips of 8 frames, ...)
    workers: int = 0  # DataLoader processes decoding samples (0: in the main process)
    dtype: Optional[str] = "auto"  # transformer weights: auto (bf16 where native: toto_robot/compute.py) | fp32 | bf16
    device: str = "auto"  # encoder and heads: auto (CUDA if present) | cpu | cuda | cuda:N
    cache_features: bool = True  # reuse the features streamed to <out>/features by a run with the same settings (277 MB for the default)
    seed: int = 0
    progress: bool = True
    out: str = "runs/probe/${probe_name:${image.source},${video.source}}"
    train: TrainSettings = field(default_factory=TrainSettings)
    image: ImageData = field(default_factory=ImageData)
    video: VideoData = field(default_factory=VideoData)


def dataset_name(source: str | None, embedded: str) -> str | None:
    """Results key of a data source: the embedded name, or the folder name / CSV stem."""
    if source is None or str(source) in ("", "null", "None"):
        return None
    if str(source) == embedded:
        return embedded
    path = Path(str(source))
    return path.stem if path.suffix else path.name


def probe_name(image_source, video_source) -> str:
    """Run-directory name: the datasets probed, e.g. digits+robot."""
    names = [dataset_name(image_source, EMBEDDED_IMAGES), dataset_name(video_source, EMBEDDED_VIDEOS)]
    return "+".join(n for n in names if n) or "none"


if not OmegaConf.has_resolver("probe_name"):
    OmegaConf.register_new_resolver("probe_name", probe_name)
ConfigStore.instance().store(name="probe_schema", node=ProbeConfig)
