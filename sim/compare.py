"""Compare encoders on the same tasks and seeds: does video pre-training help the policy? (paper 4.6)

    python sim/compare.py                                             # franka_pick: toto, mae, random, state
    python sim/compare.py tasks=[franka_pick,kuka_pick] seeds=[0,1] rounds=3 episodes=30   # the minimum study
    python sim/compare.py tasks=[franka_pick,franka_cabinet,kuka_pick,kuka_cabinet] seeds=[0,1,2]
    python sim/compare.py pools=[avg,grid4]                           # the paper's average pooling, and grid
    python sim/compare.py encoders=[toto,mae] layers=[0.25,0.5,0.75,1.0]   # Fig. 8: success vs layer
    python sim/compare.py 'encoders=[toto_lr,mae_v,state]' pretrain_seeds=[0,1,2] \
        'variants={toto_lr:["train.lr=1e-3"],mae_v:["objective=mae"]}'   # pre-training seeds: one export per variant and seed
    python sim/compare.py 'also=[{encoders:[toto],layers:[1,mid,3,4]},{tasks:[kuka_pick],seeds:[1]}]'   # more cells, same folder
    python sim/compare.py --config-name representation_study tasks=[franka_pick] 'also=[]' confirm_seed=200000   # fresh episodes
    python sim/compare.py --help                                      # every option (CompareConfig)

Every cell (task, encoder, pool, layer, seed) runs `python sim/train_policy.py` (DAgger by default)
into out/<cell>, then `python sim/eval_policy.py` on it, each as its own process with the same
overrides apart from the encoder settings: the runs differ in nothing but their features. The
state encoder has no pool or layer: one cell per task and seed. A finished cell is skipped; an
unfinished one resumes; a cell made with other settings is refused (cell.json), so a study can
run over several sittings. With `pretrain_seeds`, each variant is first pre-trained once per seed
into out/exports/<variant>_p<seed> (export.json holds its overrides, same rules), and results pool
over pre-training and policy seeds alike; a child that fails leaves its whole stderr in the
folder's compare.log and the error names its cause. Writes out/compare.png (Fig. 6: student success vs env steps, a panel
per task, a line per encoder and pool: mean over seeds, band = min..max), out/layers.png with
more than one layer (Fig. 8: final success vs layer), out/summary.json and out/summary.md (final
evaluation pooled over seeds, and over tasks too, with two 95% intervals: Wilson's over episodes, and Student's t
over runs, which widens when seeds disagree more than their episodes would; and each run's wall time and env steps/s).
out/final.png draws the final success: a panel per pool, the tasks along x, each encoder with its interval and runs.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import contextlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import shutil  # noqa: E402
from dataclasses import dataclass, field, fields, replace  # noqa: E402
from typing import Any, Dict, List, Optional  # noqa: E402

import hydra  # noqa: E402
from hydra.core.config_store import ConfigStore  # noqa: E402

from encoder.pooling import make_pool  # noqa: E402
from policies.curves import plot_comparison, plot_final, plot_layers  # noqa: E402
from policies.configuration import ENCODER_PATHS, EncoderSpec  # noqa: E402
from sim import study_records  # noqa: E402
from sim.side_by_side import child_env, run_each  # noqa: E402
from sim.study_summary import curves, export_draws, layer_points, summarize  # noqa: E402
from sim.policy_config import EVAL_EPISODES, EVAL_SEED, TrainPolicyConfig, check_choices, result_file  # noqa: E402
from sim.trainers import DaggerSettings, trainer_of  # noqa: E402
from toto_robot.compute import machine  # noqa: E402
from toto_robot.cli import bad_input_exits, conf_dir, hydra_entry, settings  # noqa: E402
from toto_robot.lock import run_lock  # noqa: E402
from toto_robot.io import atomic_write  # noqa: E402

CELL_FILE = "cell.json"


COMPARED = ("toto", "mae", "random", "state")  # the paper's comparison plus the two baselines


@dataclass
class CompareConfig:
    tasks: list = field(default_factory=lambda: ["franka_pick"])
    encoders: list = field(default_factory=lambda: list(COMPARED))  # any of policies.configuration.ENCODER_KINDS
    seeds: list = field(default_factory=lambda: [0])
    pools: list = field(default_factory=lambda: [EncoderSpec.pool])  # grid4; avg is the paper's protocol; cls (MAE only)
    layers: list = field(default_factory=lambda: [EncoderSpec.layer])  # "mid", fractions or block indices (Fig. 8)
    algo: str = "dagger"  # sim/trainers.py: a trainer without rounds (ppo) ignores the two below
    # every run's budget: train_policy.py's defaults (DaggerSettings, TrainPolicyConfig), unless set here
    rounds: int = DaggerSettings.rounds
    steps_per_round: int = DaggerSettings.steps_per_round
    num_envs: int = TrainPolicyConfig.num_envs
    eval_episodes: int = TrainPolicyConfig.eval_episodes  # pure-student episodes after every round (the curves)
    episodes: int = EVAL_EPISODES  # final evaluation of every run (eval_policy.py, its held-out seeds)
    # Once a variant was chosen on the held-out episodes, its result there is no longer unbiased: with a seed
    # (e.g. 200000), every cell is also evaluated on `episodes` fresh episodes from it (eval_seed<seed>.json),
    # pooled in summary_seed<seed>.md/.json beside the usual summary
    confirm_seed: Optional[int] = None
    encoder_path: str = EncoderSpec.path  # toto, random and random_trunk read it
    mae_path: str = ENCODER_PATHS["mae"]  # the MAE baseline's export (python pretrain/run.py objective=mae)
    extra: list = field(default_factory=list)  # further train_policy.py overrides, the same for every run
    # Pre-training seeds (one pre-training run is not a result): each encoder named in `variants` is
    # pre-trained once per seed in `pretrain_seeds` into out/exports/<variant>_p<seed> by
    # `python pretrain/run.py <its overrides> train.seed=<seed> tokenizer.train.seed=<seed>`, and its
    # cells read that export. A variant is Toto unless its overrides set objective=mae.
    variants: Dict[str, List[str]] = field(default_factory=dict)
    pretrain_seeds: list = field(default_factory=list)
    # Further cells in the same folder: each entry replaces some of the axes above (AXES), the others stay, e.g.
    # the Fig. 8 layer sweep of one encoder on two tasks, or a second policy seed where intervals overlap:
    #   also=[{tasks: [franka_pick], encoders: [toto], layers: [1, mid, 3, 4]}]
    # Pooled over tasks, only the cells of `seeds` above count, so an added seed does not weigh its tasks more.
    also: List[Any] = field(default_factory=list)
    out: str = "runs/compare"
    # A folder for every finished cell's record (sim/study_records.py: a few KB each), e.g. one under version control: a
    # cell whose record matches counts as finished even where its folder is gone, and the summary and plots are remade
    # from the records. The study then survives machines that keep no files between sittings.
    records: Optional[str] = None
    report_only: bool = False  # run nothing: summarize (and record) the cells finished so far, and list the others
    # cells (and exports) run at a time, each child with cores // workers torch threads unless OMP_NUM_THREADS is set:
    # on a CPU two single-thread cells side by side finish far more cells an hour than one cell on two threads
    workers: int = 1


ConfigStore.instance().store(name="compare_schema", node=CompareConfig)
AXES = ("tasks", "encoders", "seeds", "pools", "layers", "pretrain_seeds")  # what an `also` entry may replace


@dataclass(frozen=True)
class Cell:
    task: str
    encoder: str  # an encoder kind, or a variant's name
    pool: str
    layer: str
    seed: int
    pretrain_seed: Optional[int] = None  # the variant's export it reads (None: encoder_path / mae_path)

    @property
    def name(self) -> str:
        if self.encoder == "state":
            return f"{self.task}_state_s{self.seed}"
        pretrained = "" if self.pretrain_seed is None else f"_p{self.pretrain_seed}"
        return f"{self.task}_{self.encoder}_{self.pool}_L{self.layer}{pretrained}_s{self.seed}"

    @property
    def group(self) -> tuple[str, str, str, str]:
        """What seeds are pooled over."""
        return self.task, self.encoder, self.pool, self.layer


def cells(cfg: CompareConfig) -> list[Cell]:
    """Every run of the study, in order: the grid, then each `also` entry's cells not in it yet; the state
    encoder once per task and seed (no pool, no layer), a variant once per pre-training seed too."""
    out = []
    for grid in (cfg, *(replace(cfg, also=[], **dict(entry)) for entry in cfg.also)):
        for task in grid.tasks:
            for encoder in grid.encoders:
                settings = [("-", "-")] if encoder == "state" else [(str(p), str(n)) for p in grid.pools for n in grid.layers]
                pretrain_seeds = [int(p) for p in grid.pretrain_seeds] if encoder in cfg.variants else [None]
                out += [Cell(task, encoder, pool, layer, int(seed), pseed)
                        for pool, layer in settings for pseed in pretrain_seeds for seed in grid.seeds]
    return list(dict.fromkeys(out))


def kind_of(cfg: CompareConfig, encoder: str) -> str:
    """The encoder kind a cell's name stands for: a variant is mae if it pre-trains the MAE, else toto."""
    if encoder not in cfg.variants:
        return encoder
    return "mae" if "objective=mae" in [str(a) for a in cfg.variants[encoder]] else "toto"


def export_dir(cfg: CompareConfig, variant: str, pretrain_seed: int) -> Path:
    return Path(cfg.out) / "exports" / f"{variant}_p{pretrain_seed}"


def pretrain_args(cfg: CompareConfig, variant: str, pretrain_seed: int) -> list[str]:
    return [f"out={export_dir(cfg, variant, pretrain_seed)}", f"train.seed={pretrain_seed}",
            f"tokenizer.train.seed={pretrain_seed}", *map(str, cfg.variants[variant])]


def check(cfg: CompareConfig) -> None:
    """One-line ValueErrors for names no run could use, before anything starts."""
    for i, entry in enumerate(cfg.also):
        bad = sorted(set(entry) - set(AXES)) if hasattr(entry, "keys") else [repr(entry)]
        bad += [f"{key}={value!r} (not a list)" for key, value in (entry.items() if not bad else ()) if not isinstance(value, list)]
        if bad or not entry:
            raise ValueError(f"also[{i}]: {', '.join(bad) or 'an empty entry'}: an entry sets some of {', '.join(AXES)}, "
                             "e.g. also=[{tasks: [franka_pick], layers: [1, mid, 3, 4]}]")
        try:
            check(replace(cfg, also=[], **dict(entry)))
        except ValueError as error:
            raise ValueError(f"also[{i}]: {error}") from None
    if not isinstance(cfg.workers, int) or cfg.workers < 1:
        raise ValueError(f"workers={cfg.workers!r}: give how many cells run at a time, 1 or more")
    if not cfg.tasks or not cfg.encoders or not cfg.seeds or not cfg.pools or not cfg.layers:
        raise ValueError("tasks, encoders, seeds, pools and layers must each name at least one value")
    clash = sorted(set(cfg.variants) & set(COMPARED + ("random_trunk",)))
    if clash:
        raise ValueError(f"variants={clash}: a variant needs a name of its own, not an encoder kind's")
    for name, overrides in cfg.variants.items():
        bad = [a for a in overrides if str(a).lstrip("+").partition("=")[0] in ("out", "train.seed", "tokenizer.train.seed")]
        if bad:
            raise ValueError(f"variants.{name}={bad}: out and the seeds are set by the comparison (pretrain_seeds=)")
    if cfg.pretrain_seeds and not set(cfg.variants) & set(cfg.encoders):
        raise ValueError("pretrain_seeds= needs encoders that name a variant (variants={name: [pretrain overrides]})")
    if set(cfg.variants) & set(cfg.encoders) and not cfg.pretrain_seeds:
        raise ValueError(f"encoders={sorted(set(cfg.variants) & set(cfg.encoders))} are variants: give pretrain_seeds=[...]")
    check_choices([f"task={t}" for t in cfg.tasks] + [f"encoder={kind_of(cfg, e)}" for e in cfg.encoders])
    for pool in cfg.pools:
        if pool == "cls":
            if {kind_of(cfg, e) for e in cfg.encoders} - {"mae", "state"}:
                raise ValueError("pools=[cls]: the CLS token is the MAE's; Toto has none (use avg or grid<k>)")
        else:
            make_pool(str(pool), 8)
    trainer_of(cfg.algo)
    for arg in cfg.extra:
        key = str(arg).lstrip("+").partition("=")[0]
        if key in ("task", "encoder", "seed", "out", "algo") or key in ("encoder.pool", "encoder.layer", "encoder.path"):
            raise ValueError(f"extra={arg!r}: {key} is set by the comparison itself (tasks=, encoders=, seeds=, pools=, layers=, "
                             "algo=, encoder_path=, mae_path=)")


def encoder_path(cfg: CompareConfig, cell: Cell) -> str:
    if cell.pretrain_seed is not None:
        return str(export_dir(cfg, cell.encoder, cell.pretrain_seed) / "encoder")
    return cfg.mae_path if cell.encoder == "mae" else cfg.encoder_path


def train_args(cfg: CompareConfig, cell: Cell, out: Path) -> list[str]:
    encoder = [] if cell.encoder == "state" else [
        f"encoder.path={encoder_path(cfg, cell)}", f"encoder.pool={cell.pool}", f"encoder.layer={cell.layer}"]
    settings = {f.name for f in fields(trainer_of(cfg.algo).settings)}
    budget = [f"algo.{key}={value}" for key, value in (("rounds", cfg.rounds), ("steps_per_round", cfg.steps_per_round))
              if key in settings]
    return [f"task={cell.task}", f"encoder={kind_of(cfg, cell.encoder)}", f"seed={cell.seed}", f"algo={cfg.algo}", *budget,
            f"num_envs={cfg.num_envs}",
            f"eval_episodes={cfg.eval_episodes}", *encoder, f"out={out}", "progress=false", *map(str, cfg.extra)]


_children = {"env": None}  # set by compare(): the environment of every child (side_by_side.child_env)
LOG_FILE = "compare.log"  # in each cell and export folder: the whole stderr of a child that failed
# hydra's lines around an override error that say nothing of its cause
HYDRA_NOISE = ("HYDRA_FULL_ERROR", "reference_type=", "object_type=", "full_key:")


def run_step(module: str, args: list[str], log: Path | None = None) -> None:
    """A child entry point, `python -m <module>` (e.g. sim.train_policy). When it fails, its whole stderr
    goes to `log` and the error names its cause: the child's `error:` line, or else its last lines."""
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=os.getcwd(), stderr=subprocess.PIPE, text=True,
                          env=_children["env"])
    if done.returncode:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip() and not any(n in line for n in HYDRA_NOISE)]
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(done.stderr)
        errors = [line for line in lines if line.startswith("error:")]
        cause = errors[-1] if errors else " | ".join(lines[-4:]) or f"exit {done.returncode}"
        where = f" (all of its stderr: {log})" if log is not None else ""
        raise ValueError(f"{module} {' '.join(args[:3])} failed: {cause}{where}")


def needed_exports(cfg: CompareConfig, todo: list[Cell]) -> list[tuple[str, int]]:
    """The (variant, pre-training seed) exports the cells still to run read: their own, and the one a cell of
    another kind reads through `encoder_path` (e.g. `random` draws its weights for exports/toto_default_p0) even
    when every cell of that export is finished and only its records are kept."""
    own = [(c.encoder, c.pretrain_seed) for c in todo if c.pretrain_seed is not None]
    made = {export_dir(cfg, v, int(p)) / "encoder": (v, int(p)) for v in cfg.variants for p in cfg.pretrain_seeds}
    borrowed = {Path(encoder_path(cfg, c)) for c in todo if c.pretrain_seed is None and c.encoder != "state"}
    return list(dict.fromkeys([*(made[path] for path in borrowed if path in made), *own]))


def ensure_export(cfg: CompareConfig, variant: str, pretrain_seed: int) -> Path:
    """Pre-train (or resume, or reuse) one variant at one seed; its folder keeps the overrides it was
    made with (export.json) under the same rules as a cell."""
    folder = export_dir(cfg, variant, pretrain_seed)
    args = pretrain_args(cfg, variant, pretrain_seed)
    finished = any((folder / "encoder" / f"{kind}.json").is_file() for kind in ("toto", "mae"))
    claim(folder, args, None, finished=finished, record_file="export.json")
    if not finished:
        print(f"pre-training {variant} with seed {pretrain_seed} -> {folder}", flush=True)
        run_step("pretrain.run", [*args, "tokenize.progress=false", "train.progress=false",
                                     "tokenizer.train.progress=false"], log=folder / LOG_FILE)
    return folder / "encoder"


def evaluated(run: Path, episodes: int, seed: int = EVAL_SEED) -> dict | None:
    path = run / result_file(seed)
    if path.is_file():
        result = json.loads(path.read_text())
        if result.get("episodes") == episodes:
            return result
    return None


def claim(run: Path, args: list[str], episodes: int | None, finished: bool | None = None,
          record_file: str = CELL_FILE) -> dict:
    """The cell's record (cell.json; export.json for a pre-training): its settings, and the training
    time once trained. A cell that finished a round (an export that finished), made with other
    settings, is refused: its curves and evaluation would not be comparable. One that never got that
    far is discarded, and this says so."""
    path = run / record_file
    wanted = {"args": study_records.settings_of(args), "episodes": episodes}
    started = (run / "metrics.jsonl").is_file() if finished is None else finished
    if path.is_file():
        record = json.loads(path.read_text())
        if record["args"] == wanted["args"]:
            return record
        old, new = set(record["args"]) - set(wanted["args"]), set(wanted["args"]) - set(record["args"])
        if started:
            raise ValueError(f"{run} was made with {sorted(old)}, this comparison asks {sorted(new)}: "
                             f"use another out= or delete {run}")
        print(f"discarded {run}: it was made with {sorted(old)} and never finished; starting it with {sorted(new)}", flush=True)
        shutil.rmtree(run)
    elif started:
        raise ValueError(f"{run} holds a run this comparison did not make (no {record_file}): use another out= or delete it")
    run.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(wanted, indent=1))
    return wanted


def _record(run: Path, record: dict, **values) -> None:
    record.update(values)
    with atomic_write(run / CELL_FILE) as tmp:
        tmp.write_text(json.dumps(record, indent=1))


def finished_folder(run: Path, args: list[str], episodes: int) -> dict | None:
    """The cell.json of a run folder trained and evaluated with these settings (one made with others is refused)."""
    path = run / CELL_FILE
    if not path.is_file() or evaluated(run, episodes) is None:
        return None
    record = json.loads(path.read_text())
    if "train_seconds" not in record:
        return None
    return claim(run, args, episodes)  # the settings check (a matching record is returned as it is)


def exported_gates(cfg: CompareConfig, cell: Cell) -> dict | None:
    """The gates of the variant's export the cell read (None for encoders read from encoder_path or mae_path)."""
    return None if cell.pretrain_seed is None else study_records.export_gates(export_dir(cfg, cell.encoder, cell.pretrain_seed))


def finished(cfg: CompareConfig, jobs: list[Cell]) -> dict:
    """{cell: its record} for the cells finished so far, from their folders (whose records it writes or refreshes:
    a folder may hold evaluations its record lacks) or, where a folder is gone, from `records`."""
    kept, done = study_records.Records(cfg.records), {}
    for variant, pretrain_seed in dict.fromkeys((c.encoder, c.pretrain_seed) for c in jobs if c.pretrain_seed is not None):
        folder = export_dir(cfg, variant, pretrain_seed)
        if any((folder / "encoder" / f"{kind}.json").is_file() for kind in ("toto", "mae")):  # made with these overrides?
            claim(folder, pretrain_args(cfg, variant, pretrain_seed), None, finished=True, record_file="export.json")
    for cell in jobs:
        run = Path(cfg.out) / cell.name
        args = train_args(cfg, cell, run)
        export = None if cell.pretrain_seed is None else pretrain_args(cfg, cell.encoder, cell.pretrain_seed)
        record = kept.get(cell.name, args, cfg.episodes, export)
        folder = finished_folder(run, args, cfg.episodes)
        if folder is not None:
            record = {**study_records.from_run(run, folder), "export": export, "export_gates": exported_gates(cfg, cell)}
            kept.put(cell.name, record)
        if record is not None:
            done[cell] = record
    return done


def compare(cfg: CompareConfig) -> dict:
    """Run (or resume) every training and evaluation; write the plots and summaries; return the summary."""
    check(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = cells(cfg)
    kept = study_records.Records(cfg.records)
    done = finished(cfg, jobs)
    if cfg.report_only:
        return report(cfg, jobs, done)
    confirm = None if cfg.confirm_seed is None else str(cfg.confirm_seed)
    todo = [c for c in jobs if c not in done or (confirm is not None and confirm not in done[c]["evaluations"])]
    for cell in todo:
        if cell in done and not (out / cell.name / CELL_FILE).is_file():
            raise ValueError(f"{cell.name}: only its record is kept ({kept.path(cell.name)}), not its policy, so it cannot be "
                             f"evaluated from seed {confirm}: delete the record to train the cell again")
    exports = needed_exports(cfg, [c for c in todo if c not in done])
    for group, workers in ((exports[:1], 1), (exports[1:], cfg.workers)):  # the first renders the corpus cache they share
        _children["env"] = child_env(min(workers, len(group)))  # a child that runs alone gets every core
        run_each(group, lambda export: ensure_export(cfg, *export), workers)
    _children["env"] = child_env(min(cfg.workers, len(todo)))
    for i, cell in enumerate(jobs, 1):
        if cell not in todo:
            print(f"[{i}/{len(jobs)}] {cell.name}: finished, {done[cell]['evaluations'][str(EVAL_SEED)]['successes']}/"
                  f"{cfg.episodes}" + ("" if (out / cell.name / CELL_FILE).is_file() else f" (its record in {cfg.records})"),
                  flush=True)
    order = {cell: i for i, cell in enumerate(jobs, 1)}
    run_each(todo, lambda cell: run_cell(cfg, cell, f"[{order[cell]}/{len(jobs)}]", done, kept), cfg.workers)
    return report(cfg, jobs, done)


def run_cell(cfg: CompareConfig, cell: Cell, prefix: str, done: dict, kept: study_records.Records) -> None:
    """Train (or resume) and evaluate one cell, then keep its record in `done` and in `kept`."""
    run = Path(cfg.out) / cell.name
    args = train_args(cfg, cell, run)
    record = claim(run, args, cfg.episodes)
    result = evaluated(run, cfg.episodes)
    if result is not None and "train_seconds" in record:
        print(f"{prefix} {cell.name}: finished, {result['successes']}/{result['episodes']}", flush=True)
    else:
        start = time.time()
        print(f"{prefix} {cell.name}: training -> {run}", flush=True)
        run_step("sim.train_policy", args, log=run / LOG_FILE)
        if "train_seconds" not in record:  # this sitting's training (a resumed cell counts its last sitting)
            _record(run, record, train_seconds=time.time() - start, machine=machine(), workers=cfg.workers)
        result = evaluate(run, cfg.episodes, EVAL_SEED, prefix)
        print(f"{prefix} {cell.name}: success {result['successes']}/{result['episodes']} ({time.time() - start:.0f} s)",
              flush=True)
    if cfg.confirm_seed is not None:
        confirmed = evaluate(run, cfg.episodes, cfg.confirm_seed, prefix)
        print(f"{prefix} {cell.name} on fresh episodes (seed {cfg.confirm_seed}): "
              f"{confirmed['successes']}/{confirmed['episodes']}", flush=True)
    export = None if cell.pretrain_seed is None else pretrain_args(cfg, cell.encoder, cell.pretrain_seed)
    done[cell] = {**study_records.from_run(run, json.loads((run / CELL_FILE).read_text())), "export": export,
                  "export_gates": exported_gates(cfg, cell)}
    kept.put(cell.name, done[cell])


def report(cfg: CompareConfig, jobs: list[Cell], done: dict) -> dict:
    """summary.md/.json (and summary_seed<confirm_seed>.* with fresh episodes), compare.png and layers.png from the
    records of the finished cells; with some unfinished (report_only), says how many and which, and it names the
    exports whose cells read more than one draw."""
    out = Path(cfg.out)
    done = {cell: done[cell] for cell in jobs if cell in done}  # the study's order, whatever order the cells finished in
    missing = [c.name for c in jobs if c not in done]
    if missing:
        print(f"{len(done)} of {len(jobs)} cells finished; not yet: {', '.join(missing[:8])}"
              + (f" and {len(missing) - 8} more" if len(missing) > 8 else ""), flush=True)
    if not done:
        raise ValueError(f"no cell of this comparison has finished yet (out={cfg.out}, records={cfg.records})")
    base_seeds = [int(s) for s in cfg.seeds]
    tasks = {c.task for c in jobs}
    draws = [f"{name} is {len(prints)} draws of its export ({', '.join(prints)}: made again in a later sitting)"
             for name, prints in export_draws(done).items()]
    note = ". ".join(([f"{len(done)} of {len(jobs)} cells finished"] if missing else []) + draws)
    if cfg.confirm_seed is not None:
        summarize(out, done, cfg.confirm_seed, base_seeds, note, len(tasks))
    summary = summarize(out, done, pooled_seeds=base_seeds, note=note, tasks=len(tasks))
    plot_comparison(out / "compare.png", curves(done, cfg.layers[0]))
    plot_final(out / "final.png", summary, cfg.layers[0])
    sweep = layer_points(summary, layer_order(cfg))
    if sweep:
        plot_layers(out / "layers.png", sweep)
    return summary


def evaluate(run: Path, episodes: int, seed: int, prefix: str) -> dict:
    """The run's evaluation on `episodes` episodes from `seed`, made unless it exists."""
    if evaluated(run, episodes, seed) is None:
        print(f"{prefix} evaluating {episodes} episodes from seed {seed}", flush=True)
        run_step("sim.eval_policy", [f"run={run}", f"episodes={episodes}", f"seed={seed}", "progress=false"],
                 log=run / LOG_FILE)
    return evaluated(run, episodes, seed)


def layer_order(cfg: CompareConfig) -> list[str]:
    """The layers in the order the longest sweep names them (an `also` entry's [1, mid, 3, 4] before the grid's [mid])."""
    sweeps = sorted([[str(n) for n in dict(entry).get("layers", [])] for entry in cfg.also] + [[str(n) for n in cfg.layers]],
                    key=len, reverse=True)
    return list(dict.fromkeys(n for sweep in sweeps for n in sweep))


@hydra.main(version_base="1.3", config_path=conf_dir(__file__), config_name="compare")
def main(cfg) -> None:
    with bad_input_exits():
        config = settings(cfg)
        # report_only trains nothing and writes its files atomically, so it may read a study another process is running
        with (contextlib.nullcontext() if config.report_only else run_lock(config.out)):
            compare(config)
    print(f"-> {Path(cfg.out) / 'compare.png'}, {Path(cfg.out) / 'final.png'}, {Path(cfg.out) / 'summary.md'}"
          + (f", {Path(cfg.out) / 'layers.png'}" if len({c.layer for c in cells(config) if c.encoder != "state"}) > 1 else ""))


cli = hydra_entry(main)  # the console script's target (pyproject.toml)

if __name__ == "__main__":
    cli()
