"""The stages of `python pretrain/run.py`, each resumable on its own.

    data       resolve the sources (the embedded corpus renders its robot videos once, cached)
    tokenizer  train our FSQ tokenizer on frames of the corpus (or load `tokenizer.path`)
    tokenize   write token shards to out/tokens (torchrun-sharded, finished shards kept)
    train      pre-train the transformer in out/train (checkpoints, metrics, resume)
    export     write the frozen encoder to out/encoder: final weights + tokenizer, what
               `toto_robot.load_encoder(out/encoder)` reads

Under torchrun, rank 0 alone prepares data and tokenizer and exports; every rank tokenizes
its share of the chunks (balanced by cost) and trains. The stages before training are joined by
file markers in out/.markers, not barriers: they can take hours on one rank, far past a
collective's timeout (pretrain/markers.py).
"""
from __future__ import annotations

import json
from pathlib import Path

from pretrain import distributed, markers
from pretrain.config import OBJECTIVES, STAGES, RunConfig
from pretrain.data.sources import SourceConfig, listed_once, load_listings, save_listings
from encoder.mae import MAEConfig
from encoder.presets import preset_config
from encoder.tokenizers import load_tokenizer, save_tokenizer
from pretrain.batches import code_sequences, patch_sequences
from pretrain.checkpoints import latest_checkpoint
from pretrain.data.embedded import embedded_frames, embedded_sources
from pretrain.dry_run import dry_run
from pretrain.shards import ShardSet
from pretrain.token_stability import FEATURE_REPORT, cube_check, feature_lines, feature_report, measure, source_frames, summary_lines
from pretrain.tokenization import tokenize_sources
from pretrain.train import train
from pretrain.train_tokenizer import train_tokenizer
from toto_robot.checkpoint import load_weights, save_weights
from toto_robot.io import atomic_write

TOKENIZER_DIR, TOKENS_DIR, TRAIN_DIR, ENCODER_DIR = "tokenizer", "tokens", "train", "encoder"
LISTING_DIR = "listing"  # rank 0's file listings, read by the other ranks


def resolve_sources(cfg: RunConfig) -> list[SourceConfig]:
    """The configured sources, or the embedded corpus when none are given."""
    if cfg.data.sources:
        sources = [s if isinstance(s, SourceConfig) else SourceConfig(**s) for s in cfg.data.sources]
        for source in sources:
            if not Path(source.path).exists():
                raise FileNotFoundError(
                    f"data source {source.name!r}: {source.path} does not exist; set data.sources to your data "
                    "(see pretrain/conf/data/paper_mix.yaml) or omit it for the embedded corpus"
                )
        if cfg.data.exclude_tasks:
            raise ValueError("data.exclude_tasks applies to the embedded corpus; with data.sources, leave those videos out of the sources")
        return sources

    return embedded_sources(cfg.data.cache_dir, episodes_per_task=cfg.data.episodes_per_task,
                            image_size=cfg.tokenize.resolution, robot=cfg.data.robot,
                            progress=cfg.tokenize.progress, exclude_tasks=tuple(cfg.data.exclude_tasks))


def reads_pixels(cfg: RunConfig) -> bool:
    """True when the run trains on pixel patches (tokenizer=patch, objective=mae or patch_dvae) rather than codes."""
    return cfg.objective in ("mae", "patch_dvae") or cfg.tokenizer.kind == "patch"


def input_tokenizer(cfg: RunConfig, tokenizer):
    """What the transformer reads: the run's tokenizer, except under objective=patch_dvae, whose model
    reads the pixel patches of that tokenizer's grid and predicts its codes (the tokenizer is the target)."""
    if cfg.objective != "patch_dvae" or tokenizer is None:
        return tokenizer
    return load_tokenizer(f"patch:{tokenizer.downsample}")


def prepare_tokenizer(cfg: RunConfig, sources: list[SourceConfig], train: bool = True):
    """The run's tokenizer; an fsq tokenizer without `path` is trained into out/tokenizer first.
    objective=mae reads 8x8 pixel patches (MVP's ViT/16 at 224 px has the same 14-16 patches a side)."""
    settings = cfg.tokenizer
    if cfg.objective == "mae":
        if settings.path:
            raise ValueError(f"objective=mae reads pixel patches: drop tokenizer.path={settings.path}")
        return load_tokenizer("patch")
    if settings.kind not in ("fsq", "dalle", "patch"):
        raise ValueError(f"tokenizer.kind={settings.kind!r}: use fsq, dalle or patch")
    if cfg.objective == "patch_dvae" and settings.kind == "patch":
        raise ValueError("objective=patch_dvae (the default) predicts the codes of a discrete tokenizer: use tokenizer=fsq_stable, "
                         "fsq or dalle; tokenizer=patch (patch in, patch out) trains with objective=ar")
    if settings.kind == "patch":
        return load_tokenizer(settings.path or "patch")
    if settings.path:
        return load_tokenizer(settings.path, allow_pickle=settings.allow_pickle)
    if settings.kind == "dalle":
        raise ValueError("tokenizer=dalle needs tokenizer.path=/path/to/encoder.pkl (the official dVAE encoder weights)")
    directory = Path(cfg.out) / TOKENIZER_DIR
    if train:
        frames = embedded_frames(cfg.data.cache_dir, settings.train_frames, settings.val_frames,
                                 seed=settings.train.seed, resolution=cfg.tokenize.resolution,
                                 val_fraction=cfg.tokenize.val_fraction, sources=sources)
        metrics = train_tokenizer(*frames, settings.train, directory, device=cfg.device,
                                  report=stability_report(cfg, sources))
        print(f"tokenizer: held-out PSNR {metrics['psnr_db']:.1f} dB (untrained {metrics['psnr_init_db']:.1f}), "
              f"code perplexity {metrics['code_perplexity']:.0f}, usage {metrics['codebook_usage']:.1%} (diagnostics, not targets)"
              + (" [already trained]" if metrics["skipped"] else "") + f" -> {directory}")
        if "stability" in metrics:
            for line in summary_lines(metrics["stability"]):
                print(f"tokenizer: {line}")
    return load_tokenizer(directory)


def stability_report(cfg: RunConfig, sources: list[SourceConfig]):
    """What the tokenizer stage measures on its trained tokenizer (pretrain/token_stability.py):
    held-out renders, the embedded corpus's lossless storage round trip (none for the user's own
    sources, read as they are), PSNR per source, the cube's colour through the round trip."""
    def report(tokenizer) -> dict:
        frames = source_frames(sources, cfg.tokenize.resolution, cfg.tokenize.val_fraction)
        result = measure(tokenizer, frames, lossless=None if cfg.data.sources else True, image_size=cfg.tokenize.resolution)
        result["cube"], result["crops"] = cube_check(tokenizer, cfg.tokenize.resolution)
        return result

    return report


def read_index(cfg: RunConfig) -> dict:
    path = Path(cfg.out) / TOKENS_DIR / "index.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run stage=tokenize (or stage=all) first")
    index = json.loads(path.read_text())
    if not index["complete"]:
        raise ValueError(f"{path}: tokenization is unfinished ({index['chunks']['done']}/{index['chunks']['total']} "
                         "chunks); rerun stage=tokenize to finish it")
    return index


def pixel_content(index: dict) -> bool:
    """True when out/tokens holds uint8 pixel rows (a continuous tokenizer) rather than token ids."""
    return index.get("content", "tokens") == "pixels"


def model_config(cfg: RunConfig, index: dict, tokenizer=None):
    """The preset with the run's overrides; the vocabulary follows the tokenizer (objective=patch_dvae: the
    target tokenizer's codes, from `tokenizer` when at hand, else loaded).

    Pixel shards train a patch model: patch_dim from the patch size the grid implies
    (resolution / grid, the tokenizer's downsample), and max_seq_len = frames x grid^2 patches,
    as patch sequences have no start/end tokens (vocab_size stays the preset's, unused).
    """
    if cfg.objective == "mae":
        grid = index["grid"]
        return MAEConfig.like(preset_config(cfg.model.preset), patch_dim=3 * (index["settings"]["resolution"] // grid) ** 2,
                              grid=grid, mask_ratio=cfg.mae.mask_ratio, decoder_layers=cfg.mae.decoder_layers,
                              decoder_dim=cfg.mae.decoder_dim)
    if pixel_content(index):
        patch = index["settings"]["resolution"] // index["grid"]
        overrides = {"patch_dim": 3 * patch**2, "max_seq_len": index["frames"] * index["grid"] ** 2}
        if cfg.objective == "patch_dvae":  # the head scores the target tokenizer's codes (no special ids)
            target = tokenizer if tokenizer is not None else prepare_tokenizer(cfg, [], train=False)
            overrides.update(code_head=True, vocab_size=int(target.codebook_size))
    else:
        overrides = {"vocab_size": index["vocab_size"], "max_seq_len": index["seq_len"]}
    if cfg.model.rope_base is not None:
        overrides["rope_base"] = cfg.model.rope_base
    return preset_config(cfg.model.preset, **overrides)


def shard_sets(cfg: RunConfig, index: dict):
    """(train sets with weights, val sets) from the tokenized sources that have rows."""
    root = Path(cfg.out) / TOKENS_DIR
    train, val = [], []
    for source in index["sources"]:
        splits = source["splits"]
        if source["weight"] > 0 and splits["train"]["rows"] > 0:
            train.append((ShardSet(root / splits["train"]["dir"]), source["weight"]))
        if splits["val"]["rows"] > 0:
            val.append(ShardSet(root / splits["val"]["dir"]))
    if not train:
        raise ValueError(f"{root}: no source produced training sequences (all files skipped?); check data.sources")
    return train, val


def patchify(cfg: RunConfig, index: dict, tokenizer=None):
    """What train() needs to read pixel shards: uint8 rows -> patch sequences (None for token shards).

    The shards do not record the continuous tokenizer (any suits pixels), so the configured one
    is used, checked against the shards' grid; `tokenizer` saves rebuilding it when at hand.
    """
    if pixel_content(index) != reads_pixels(cfg):
        content = "pixel rows (tokenizer=patch, objective=mae or patch_dvae)" if pixel_content(index) else "token ids"
        raise ValueError(f"{Path(cfg.out) / TOKENS_DIR} holds {content} but tokenizer.kind={cfg.tokenizer.kind!r}, "
                         f"objective={cfg.objective}: use the settings the shards were made with, or another out")
    if not pixel_content(index):
        return None
    tokenizer = input_tokenizer(cfg, tokenizer if tokenizer is not None else prepare_tokenizer(cfg, [], train=False))
    resolution = index["settings"]["resolution"]
    if resolution // tokenizer.downsample != index["grid"]:
        raise ValueError(f"tokenizer {cfg.tokenizer.path or 'patch'!r} cuts {resolution}px frames into a "
                         f"{resolution // tokenizer.downsample}-wide grid but the shards were made for {index['grid']}")
    return patch_sequences(tokenizer)


def code_targets(cfg: RunConfig, tokenizer):
    """objective=patch_dvae: uint8 rows -> `tokenizer`'s codes, the targets (None for every other objective)."""
    return code_sequences(tokenizer) if cfg.objective == "patch_dvae" else None


def code_values(cfg: RunConfig, tokenizer):
    """(K, d) quantized latent of every code, for train.code_embedding=fsq (None otherwise)."""
    if cfg.train.code_embedding != "fsq":
        return None
    if cfg.objective != "ar":
        raise ValueError(f"train.code_embedding=fsq starts a code embedding table; objective={cfg.objective} reads patches "
                         "and has none: use train.code_embedding=normal")
    if tokenizer is None:
        tokenizer = prepare_tokenizer(cfg, [], train=False)
    if getattr(tokenizer, "kind", "") != "fsq":
        raise ValueError(f"train.code_embedding=fsq needs tokenizer=fsq, not {tokenizer.kind!r}: use train.code_embedding=normal")
    import torch

    return tokenizer.quantizer.indices_to_codes(torch.arange(tokenizer.codebook_size))


def init_weights(cfg: RunConfig) -> dict | None:
    """Weights to start from (coarse-to-fine), from an encoder or training-checkpoint directory."""
    if not cfg.model.init_from:
        return None

    path = Path(cfg.model.init_from)
    if (path / "checkpoints").is_dir():
        path = latest_checkpoint(path)
    state, _ = load_weights(path, "toto", kind="toto")
    return state


def export_encoder(cfg: RunConfig, tokenizer, summary: dict | None = None) -> Path:
    """Copy the final weights and the tokenizer into out/encoder (atomic files, JSON last)."""
    train_dir = Path(cfg.out) / TRAIN_DIR
    checkpoint = latest_checkpoint(train_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint in {train_dir}: run stage=train (or stage=all) first")
    index = read_index(cfg)
    out = Path(cfg.out) / ENCODER_DIR
    save_tokenizer(input_tokenizer(cfg, tokenizer), out)  # what the frozen encoder reads frames with
    state, meta = load_weights(checkpoint, "toto", kind="toto")
    if cfg.objective == "mae":  # the frozen MAE: toto_robot.load_encoder reads it as encoder/frozen_mae.py
        frames = (summary or {}).get("tokens_seen", 0) // index["grid"] ** 2
        save_weights(out, "mae", state, kind="mae", config=meta["config"], tokenizer="tokenizer",
                     resolution=index["settings"]["resolution"], source_checkpoint=str(checkpoint),
                     frames_seen=frames, summary=summary or {})
        return out
    geometry = {"frames": index["frames"], "grid": index["grid"], "seq_len": meta["config"]["max_seq_len"]}
    save_weights(out, "toto", state, kind="toto", config=meta["config"], tokenizer="tokenizer",
                 resolution=index["settings"]["resolution"], source_checkpoint=str(checkpoint),
                 summary=summary or {}, **geometry)
    return out


def report_features(encoder_dir: Path, device: str = "auto") -> dict:
    """Measure the export's feature stability, print it and write it beside the weights."""
    try:
        report = feature_report(encoder_dir, device)
    except (ImportError, RuntimeError) as error:  # no MuJoCo or no GL context where the export ran: say so, keep the export
        print(f"export: feature stability not measured ({type(error).__name__}: {str(error).splitlines()[0]})")
        return {}
    for line in feature_lines(report):
        print(f"export: {line}")
    with atomic_write(encoder_dir / FEATURE_REPORT) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    return report


def _prepare(cfg: RunConfig, stages: tuple[str, ...], train_tokenizer: bool):
    """(sources, tokenizer) as far as `stages` need them (None otherwise)."""
    sources = resolve_sources(cfg) if {"data", "tokenizer", "tokenize"} & set(stages) else None
    tokenizer = None
    if {"tokenizer", "tokenize", "export"} & set(stages):
        tokenizer = prepare_tokenizer(cfg, sources, train=train_tokenizer and "tokenizer" in stages)
    return sources, tokenizer


def _join_tokenize(cfg: RunConfig, sources, tokenizer, info, marks: Path, nonce: str) -> None:
    """Wait until every rank has tokenized its share; rank 0 then marks the index complete."""
    markers.mark(marks / f"tokenized.rank{info.rank}", nonce)
    if info.is_main:
        markers.wait_until(lambda: all(markers.is_marked(marks / f"tokenized.rank{r}", nonce) for r in range(info.world_size)),
                           "every rank to finish its tokenization share")
        tokenize_sources(sources, input_tokenizer(cfg, tokenizer), Path(cfg.out) / TOKENS_DIR, cfg.tokenize, 0, 1)  # index complete
        markers.mark(marks / "tokenized", nonce)
    else:
        markers.wait_for(marks / "tokenized", nonce, "rank 0 to complete the token index")


def run(cfg: RunConfig, stages: tuple[str, ...] | None = None) -> dict:
    """Run `cfg.stage` (or all stages in order, or the given `stages`); return what each stage produced.

    Each source is walked once per run (`listed_once`); under torchrun, once in all."""
    with listed_once():
        return _run(cfg, stages)


def _run(cfg: RunConfig, stages: tuple[str, ...] | None = None) -> dict:
    if cfg.stage not in STAGES:
        raise ValueError(f"stage={cfg.stage!r}: use one of {', '.join(STAGES)}")
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"objective={cfg.objective!r}: use one of {', '.join(OBJECTIVES)}")
    if cfg.objective == "mae" and cfg.model.init_from:
        raise ValueError("objective=mae trains from scratch: drop model.init_from")
    stages = stages or (STAGES[1:] if cfg.stage == "all" else (cfg.stage,))
    if cfg.dry_run:
        return {"dry_run": dry_run(cfg, cfg.dry_run_world_size)}
    info = distributed.setup(cfg.device, cfg.dist_timeout_minutes)
    result: dict = {}
    try:
        nonce = markers.launch_nonce(info)
        marks = Path(cfg.out) / markers.MARKERS_DIR
        listings = Path(cfg.out) / LISTING_DIR
        if info.is_main:  # the others wait, then load what rank 0 made (the robot videos are cached, the listings saved)
            sources, tokenizer = _prepare(cfg, stages, train_tokenizer=True)
            if sources is not None and info.world_size > 1:
                save_listings(sources, listings)
            markers.mark(marks / "prepared", nonce)
        else:
            markers.wait_for(marks / "prepared", nonce, "rank 0 to prepare the data and tokenizer")
            if cfg.data.sources:
                load_listings(resolve_sources(cfg), listings)
            sources, tokenizer = _prepare(cfg, stages, train_tokenizer=False)
        if sources is not None:
            result["sources"] = [source.name for source in sources]
        if tokenizer is not None:
            result["tokenizer"] = tokenizer.kind
        if "tokenize" in stages:
            tokens = Path(cfg.out) / TOKENS_DIR
            result["tokenize"] = tokenize_sources(sources, input_tokenizer(cfg, tokenizer), tokens, cfg.tokenize, info.rank,
                                                  info.world_size, device=info.device)
            if info.world_size > 1:
                _join_tokenize(cfg, sources, tokenizer, info, marks, nonce)
        if "train" in stages:
            index = read_index(cfg)
            train_sets, val_sets = shard_sets(cfg, index)
            if tokenizer is None and cfg.objective == "patch_dvae":  # stage=train alone: the targets' tokenizer, once
                tokenizer = prepare_tokenizer(cfg, [], train=False)
            result["train"] = train(model_config(cfg, index, tokenizer), train_sets, val_sets, cfg.train, Path(cfg.out) / TRAIN_DIR,
                                    init_weights=init_weights(cfg), patchify=patchify(cfg, index, tokenizer), dist_info=info,
                                    frame_tokens=index["grid"] ** 2, code_values=code_values(cfg, tokenizer),
                                    codes=code_targets(cfg, tokenizer))
        distributed.teardown(info)  # the ranks' shared work is done: leave together, then rank 0 exports alone
        if "export" in stages and info.is_main:
            result["encoder"] = str(export_encoder(cfg, tokenizer, result.get("train")))
            report_features(Path(result["encoder"]), cfg.device)
        return result
    finally:
        distributed.teardown(info, meet=False)  # after an error (a no-op once the group is gone)
