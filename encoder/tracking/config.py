"""The settings of `python -m encoder.track`: one structured config, so a misspelt key or a wrongly
typed value is a one-line hydra error."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from hydra.core.config_store import ConfigStore

from encoder.tracking.propagate import PropagationSettings
from toto_robot.run_paths import encoder_export


@dataclass
class TrackData:
    root: Optional[str] = None  # a DAVIS-2017 root (JPEGImages/, Annotations/, ImageSets/); null: the embedded sim set
    split: str = "val"  # ImageSets/<year>/<split>.txt
    year: str = "2017"
    resolution: str = "480p"  # the JPEGImages/Annotations sub-folder (the embedded set's is 128p)
    videos: Optional[List[str]] = None  # these videos only; null: the split's list
    max_frames: Optional[int] = None  # track at most this many frames of each video; null: all
    # the embedded set (sim/segmentation.py): expert episodes with MuJoCo's ground-truth masks
    cache_dir: str = "runs/cache/track_sim_png"  # _png: sets of earlier versions held JPEG frames
    episodes_per_task: int = 1  # x 4 tasks x 2 cameras = 8 videos
    seed: int = 5000  # episode seeds 5000..: the pre-training corpus uses 0.., the probes 1000..
    frames: int = 60  # the paper's Fig. 5 propagates 60 frames
    frame_step: int = 1


@dataclass
class TrackConfig:
    # encoder directories: Toto exports and/or the MAE baseline's (python pretrain/run.py objective=mae);
    # `pixels`: raw 8 x 8 patches, the no-learning reference
    encoders: List[str] = field(default_factory=lambda: [encoder_export()])
    layers: Optional[List[str]] = None  # null: every block 1..n_layers; or e.g. [1,3], [mid], [-1], [0.5]
    propagation: PropagationSettings = field(default_factory=PropagationSettings)
    boundary_tolerance: float = 0.008  # F's tolerance: a fraction of the image diagonal (DAVIS), or pixels if >= 1
    overlays: int = 4  # MP4s of the best layer's masks for this many videos per encoder (0: none)
    batch_frames: int = 16  # frames per encoder forward
    dtype: Optional[str] = "auto"  # auto (bf16 where native: toto_robot/compute.py) | fp32 | bf16
    device: str = "auto"
    progress: bool = True
    out: str = "runs/track"
    data: TrackData = field(default_factory=TrackData)


ConfigStore.instance().store(name="track_schema", node=TrackConfig)
