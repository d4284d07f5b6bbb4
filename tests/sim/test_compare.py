"""sim/compare.py: every (task, encoder, seed) trained and evaluated alike, one plot, pooled summaries, resume."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.policy_config import EVAL_SEED, result_file
from toto_robot.compute import usable_cores
from tests.cli_errors import one_line_error

ROOT = Path(__file__).resolve().parents[2]


def cli(*overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, "sim/compare.py", *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_compare_runs_encoders_on_the_same_seeds_and_resumes(tmp_path):
    from tests.encoder.conftest import make_encoder_dir

    encoder = make_encoder_dir(tmp_path / "enc")  # 32 px frames
    out = tmp_path / "cmp"
    args = ("encoders=[random,state]", "seeds=[0,1]", "rounds=2", "steps_per_round=64", "num_envs=2",
            "eval_episodes=2", "episodes=2", f"encoder_path={encoder}", 'extra=["algo.epochs=1","videos=0"]', f"out={out}")
    done = cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(p.name for p in out.iterdir() if p.is_dir() and (p / "policy.json").is_file())
    assert runs == ["franka_pick_random_grid4_Lmid_s0", "franka_pick_random_grid4_Lmid_s1", "franka_pick_state_s0",
                    "franka_pick_state_s1"]
    for run in runs:
        settings = json.loads((out / run / "policy.json").read_text())
        assert (settings["algo"]["rounds"], settings["algo"]["steps_per_round"], settings["num_envs"]) == (2, 64, 2)
        assert settings["seed"] == int(run[-1]) and settings["algo"]["epochs"] == 1
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())["runs"]
    assert [(r["encoder"], r["episodes"], r["seeds"]) for r in summary] == [("random", 4, [0, 1]), ("state", 4, [0, 1])]
    for row in summary:
        stem = "random_grid4_Lmid" if row["encoder"] == "random" else "state"
        evals = [json.loads((out / f"franka_pick_{stem}_s{s}" / "eval.json").read_text()) for s in (0, 1)]
        assert row["successes"] == sum(e["successes"] for e in evals)
        assert row["ci95"][0] <= row["success_rate"] <= row["ci95"][1]
    assert "| franka_pick | state | - | - |" in (out / "summary.md").read_text()
    stamp = (out / "franka_pick_state_s0" / "model.safetensors").stat().st_mtime_ns
    again = cli(*args)  # everything finished: reused, not redone
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "franka_pick_state_s0" / "model.safetensors").stat().st_mtime_ns == stamp
    assert "evaluating" not in again.stdout and again.stdout.count(": finished,") == 4


def test_bad_settings_are_one_line(tmp_path):
    for override, expected in (("tasks=[franka_pik]", "unknown task 'franka_pik'"),
                               ("encoders=[dino]", "unknown encoder 'dino'"),
                               ('extra=["seed=3"]', "seed is set by the comparison"),
                               ("also=[{task:[kuka_pick]}]", "also[0]: task: an entry sets some of tasks")):
        assert expected in one_line_error(cli(override, f"out={tmp_path / 'x'}"))


def fake_runs(monkeypatch, calls: list):
    """compare's child processes replaced by ones that write what train_policy/eval_policy write."""
    import sim.compare as compare

    def run_step(script, args, log=None):
        calls.append((script, args))
        values = dict(a.split("=", 1) for a in args)
        if script == "pretrain.run":  # what an export leaves: out/encoder/<kind>.json
            kind = "mae" if values.get("objective") == "mae" else "toto"
            (Path(values["out"]) / "encoder").mkdir(parents=True)
            (Path(values["out"]) / "encoder" / f"{kind}.json").write_text(json.dumps({"summary": {"final_val_loss": 6.5}}))
            (Path(values["out"]) / "encoder" / "feature_stability.json").write_text(json.dumps({"self_match": {"2": 0.6}}))
            return
        run = Path(values["out"] if script == "sim.train_policy" else values["run"])
        if script == "sim.train_policy":
            rows = [{"round": r, "env_steps": 100 * (r + 1), "eval_success_rate": 0.5} for r in range(2)]
            (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        else:  # fresh episodes (seed 200000) go worse for toto here: 2 successes against 3
            seed = int(values.get("seed", EVAL_SEED))
            successes = (3 if seed == EVAL_SEED else 2) if "toto" in run.name else 1
            made = (Path(run).parent / "exports").glob("*/encoder/*.json")  # the export's file time: its draw
            fingerprint = str(max((p.stat().st_mtime_ns for p in made), default=0))
            (run / result_file(seed)).write_text(json.dumps({"episodes": int(values["episodes"]), "successes": successes,
                                                             "encoder_fingerprint": fingerprint}))

    monkeypatch.setattr(compare, "run_step", run_step)
    return compare


def test_cells_cover_pools_and_layers_and_resume_skips_finished_ones(tmp_path, monkeypatch):
    calls = []
    compare = fake_runs(monkeypatch, calls)
    cfg = compare.CompareConfig(tasks=["franka_pick", "kuka_pick"], encoders=["toto", "state"], seeds=[0, 1],
                                pools=["avg", "grid4"], layers=["0.5", "1.0"], episodes=4, out=str(tmp_path))
    summary = compare.compare(cfg)
    names = sorted(p.name for p in tmp_path.iterdir() if (p / "cell.json").is_file())
    assert len(names) == 2 * 2 * (2 * 2 + 1) and "franka_pick_toto_avg_L0.5_s1" in names and "kuka_pick_state_s0" in names
    toto_args = [a for s, a in calls if s == "sim.train_policy" and "encoder=toto" in a]
    settings = {tuple(x for x in a if x.startswith(("encoder.pool=", "encoder.layer="))) for a in toto_args}
    assert settings == {(f"encoder.pool={p}", f"encoder.layer={n}") for p in ("avg", "grid4") for n in ("0.5", "1.0")}
    assert all(not any(x.startswith("encoder.pool") for x in a) for s, a in calls if "encoder=state" in a)
    toto = next(r for r in summary["runs"] if (r["task"], r["encoder"], r["pool"], r["layer"]) == ("kuka_pick", "toto", "avg", "1.0"))
    assert (toto["successes"], toto["episodes"], toto["seeds"]) == (6, 8, [0, 1])
    pooled = next(r for r in summary["pooled_over_tasks"] if (r["encoder"], r["pool"], r["layer"]) == ("toto", "grid4", "0.5"))
    assert (pooled["task"], pooled["successes"], pooled["episodes"]) == ("all", 12, 16)
    assert pooled["ci95"][0] < 0.75 < pooled["ci95"][1] and toto["env_steps_per_s"] > 0
    assert pooled["ci95_runs"] == [0.75, 0.75] and len(pooled["run_rates"]) == 4  # every fake run scores 3/4
    for png in ("compare.png", "layers.png", "final.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    rows = compare.curves(compare.finished(cfg, compare.cells(cfg)), "0.5")  # compare.png: a row per pool, state in each
    assert list(rows) == ["avg", "grid4"] and all(set(rows[p]["kuka_pick"]) == {"toto", "state"} for p in rows)
    assert "| all | toto | grid4 | 0.5 |" in (tmp_path / "summary.md").read_text()
    calls.clear()
    compare.compare(cfg)  # everything finished: no child process at all
    assert calls == []


def test_also_adds_a_layer_sweep_and_a_seed_to_the_same_folder_and_pools_tasks_alike(tmp_path, monkeypatch):
    calls = []
    compare = fake_runs(monkeypatch, calls)
    cfg = compare.CompareConfig(tasks=["franka_pick", "kuka_pick"], encoders=["toto", "mae", "state"], episodes=4, out=str(tmp_path),
                                also=[{"tasks": ["kuka_pick"], "encoders": ["toto"], "layers": ["1", "mid", "3"]},
                                      {"tasks": ["kuka_pick"], "encoders": ["mae", "toto"], "seeds": [1]}])
    summary = compare.compare(cfg)
    names = [c.name for c in compare.cells(cfg)]
    assert len(names) == len(set(names)) == 6 + 2 + 2  # the grid, two more layers, seed 1 for two encoders
    assert {"kuka_pick_toto_grid4_L1_s0", "kuka_pick_toto_grid4_L3_s0", "kuka_pick_mae_grid4_Lmid_s1"} < set(names)
    assert "franka_pick_toto_grid4_L1_s0" not in names and "kuka_pick_state_s1" not in names
    mae = {r["task"]: r for r in summary["runs"] if r["encoder"] == "mae"}
    assert mae["kuka_pick"]["seeds"] == [0, 1] and mae["franka_pick"]["seeds"] == [0]
    pooled = next(r for r in summary["pooled_over_tasks"] if (r["encoder"], r["layer"]) == ("mae", "mid"))
    assert (pooled["successes"], pooled["episodes"]) == (2, 8)  # seed 0 of each task: the added seed is not pooled
    assert (tmp_path / "layers.png").read_bytes()[:4] == b"\x89PNG"
    sweep = compare.layer_points(summary, compare.layer_order(cfg))
    assert list(sweep) == ["kuka_pick"] and list(sweep["kuka_pick"]) == ["toto (grid4)"]  # only lines read at several layers
    assert [p[0] for p in sweep["kuka_pick"]["toto (grid4)"]] == ["1", "mid", "3"]  # in the sweep's order, not the cells'
    rows = compare.curves(compare.finished(cfg, compare.cells(cfg)), "mid")
    assert list(rows) == ["grid4"] and set(rows["grid4"]["kuka_pick"]) == {"toto", "mae", "state"}
    calls.clear()
    compare.compare(cfg)
    assert calls == []
    with pytest.raises(ValueError, match=r"also\[0\]: unknown task 'kuka_pik'"):
        compare.check(compare.CompareConfig(also=[{"tasks": ["kuka_pik"]}]))
    with pytest.raises(ValueError, match=r"also\[0\]: task: an entry sets some of tasks"):
        compare.check(compare.CompareConfig(also=[{"task": ["kuka_pick"]}]))


def test_a_cell_made_with_other_settings_is_refused(tmp_path, monkeypatch):
    calls = []
    compare = fake_runs(monkeypatch, calls)
    cfg = compare.CompareConfig(encoders=["state"], rounds=2, episodes=4, out=str(tmp_path))
    compare.compare(cfg)
    changed = compare.CompareConfig(encoders=["state"], rounds=3, episodes=4, out=str(tmp_path))
    with pytest.raises(ValueError, match=r"franka_pick_state_s0 was made with \['algo.rounds=2'\], this comparison asks "
                                         r"\['algo.rounds=3'\]: use another out= or delete"):
        compare.compare(changed)
    (tmp_path / "franka_pick_state_s0" / "cell.json").unlink()  # a run compare did not make
    with pytest.raises(ValueError, match="holds a run this comparison did not make"):
        compare.compare(cfg)


def test_cls_pooling_is_the_maes_alone(tmp_path):
    from sim.compare import CompareConfig, check

    with pytest.raises(ValueError, match="the CLS token is the MAE's"):
        check(CompareConfig(encoders=["toto", "mae"], pools=["cls"]))
    check(CompareConfig(encoders=["mae", "state"], pools=["cls"]))
    with pytest.raises(ValueError, match="encoder.pool is set by the comparison"):
        check(CompareConfig(extra=["encoder.pool=avg"]))


def test_pretraining_seeds_give_each_variant_its_own_exports_pooled_over_seeds(tmp_path, monkeypatch):
    calls = []
    compare = fake_runs(monkeypatch, calls)
    cfg = compare.CompareConfig(encoders=["toto_new", "mae_p", "state"], pretrain_seeds=[0, 1, 2], seeds=[0], episodes=4,
                                variants={"toto_new": ["train.lr=1e-3"], "mae_p": ["objective=mae"]}, out=str(tmp_path))
    summary = compare.compare(cfg)
    pretrains = [a for s, a in calls if s == "pretrain.run"]
    assert len(pretrains) == 6 and all(f"train.seed={a[0][-1]}" in a and f"tokenizer.train.seed={a[0][-1]}" in a for a in pretrains)
    trains = {a[-1] if False else next(x for x in a if x.startswith("out=")): a for s, a in calls if s == "sim.train_policy"}
    mae_run = trains[f"out={tmp_path / 'franka_pick_mae_p_grid4_Lmid_p2_s0'}"]
    assert "encoder=mae" in mae_run and f"encoder.path={tmp_path / 'exports' / 'mae_p_p2' / 'encoder'}" in mae_run
    toto_run = trains[f"out={tmp_path / 'franka_pick_toto_new_grid4_Lmid_p0_s0'}"]
    assert "encoder=toto" in toto_run and f"encoder.path={tmp_path / 'exports' / 'toto_new_p0' / 'encoder'}" in toto_run
    row = next(r for r in summary["runs"] if r["encoder"] == "toto_new")
    assert (row["successes"], row["episodes"], row["seeds"]) == (9, 12, ["p0s0", "p1s0", "p2s0"])
    assert "| 9/12 = 75% | 47%-91% | 75%-75% | p0s0 3, p1s0 3, p2s0 3 |" in (tmp_path / "summary.md").read_text()  # each run
    calls.clear()
    compare.compare(cfg)  # every export and cell finished: nothing runs
    assert calls == []
    changed = compare.CompareConfig(**{**cfg.__dict__, "variants": {"toto_new": ["train.lr=2e-3"], "mae_p": ["objective=mae"]}})
    with pytest.raises(ValueError, match=r"toto_new_p0 was made with \['train.lr=1e-3'\]"):
        compare.compare(changed)


def test_an_unfinished_cell_with_other_settings_is_discarded_and_a_failure_says_why(tmp_path, monkeypatch, capsys):
    import sim.compare as compare

    cfg = compare.CompareConfig(encoders=["state"], rounds=2, episodes=4, out=str(tmp_path),
                                extra=["encoder.pol=grid4"])  # a typo the child refuses
    with pytest.raises(ValueError) as error:
        compare.compare(cfg)
    message = str(error.value)
    assert "encoder.pol" in message and "HYDRA_FULL_ERROR" not in message.split("(all of its stderr")[0]
    log = tmp_path / "franka_pick_state_s0" / compare.LOG_FILE
    assert "encoder.pol" in log.read_text()
    calls = []
    compare = fake_runs(monkeypatch, calls)
    fixed = compare.CompareConfig(encoders=["state"], rounds=2, episodes=4, out=str(tmp_path))
    compare.compare(fixed)  # the cell never trained: discarded, not refused
    assert "discarded" in capsys.readouterr().out and len(calls) == 2


def test_fresh_episodes_give_their_own_summary_and_leave_the_held_out_one(tmp_path, monkeypatch):
    """confirm_seed: every cell (finished ones too) evaluated again from another episode seed, pooled apart."""
    calls = []
    compare = fake_runs(monkeypatch, calls)
    cfg = compare.CompareConfig(tasks=["franka_pick", "kuka_pick"], encoders=["toto", "state"], episodes=4, out=str(tmp_path))
    compare.compare(cfg)
    held_out = (tmp_path / "summary.json").read_text()
    calls.clear()
    summary = compare.compare(compare.CompareConfig(**{**cfg.__dict__, "confirm_seed": 200000}))
    assert [s for s, _ in calls] == ["sim.eval_policy"] * 4 and all("seed=200000" in a for _, a in calls)  # no training
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(held_out) == summary
    fresh = json.loads((tmp_path / "summary_seed200000.json").read_text())
    toto = next(r for r in fresh["pooled_over_tasks"] if r["encoder"] == "toto")
    assert (toto["successes"], toto["episodes"]) == (4, 8)  # 2 a task, against 3 on the held-out episodes
    assert "| all | toto | grid4 | mid |" in (tmp_path / "summary_seed200000.md").read_text()
    calls.clear()
    compare.compare(compare.CompareConfig(**{**cfg.__dict__, "confirm_seed": 200000}))
    assert calls == []


def test_the_interval_over_runs_sees_seeds_that_disagree():
    """Wilson's interval counts episodes; runs_interval counts runs: seeds at 18, 0 and 6 of 30 (an MAE on kuka_pick)
    pool to 24/90 with a Wilson interval of 18-37%, but over runs the mean's interval spans far wider."""
    from policies.curves import runs_interval, wilson_interval

    low, high = wilson_interval(24, 90)
    spread = runs_interval([18 / 30, 0 / 30, 6 / 30])
    assert spread[0] == 0.0 and spread[1] > 0.9 and high - low < 0.2  # clipped at 0; mean 0.27, sd 0.31, t(2) 4.30
    agree = runs_interval([8 / 30, 8 / 30, 8 / 30])
    assert agree == (8 / 30, 8 / 30) and runs_interval([0.5]) is None


def test_records_carry_a_study_to_a_machine_that_kept_no_folders(tmp_path, monkeypatch, capsys):
    """records=: each finished cell leaves a small record; with the cell folders and exports gone (a new machine), the
    study counts those cells as finished, remakes its summary and plots from the records and runs only the rest."""
    import shutil

    calls = []
    compare = fake_runs(monkeypatch, calls)
    records = tmp_path / "records"
    cfg = compare.CompareConfig(tasks=["franka_pick", "kuka_pick"], encoders=["toto_v", "state"], pretrain_seeds=[0],
                                variants={"toto_v": ["train.lr=1e-3"]}, episodes=4, out=str(tmp_path / "study"),
                                records=str(records))
    first = compare.compare(replace_(cfg, tasks=["franka_pick"]))  # one sitting: franka_pick only
    assert sorted(p.name for p in records.iterdir()) == ["franka_pick_state_s0.json", "franka_pick_toto_v_grid4_Lmid_p0_s0.json"]
    kept = json.loads((records / "franka_pick_toto_v_grid4_Lmid_p0_s0.json").read_text())
    assert kept["evaluations"][str(EVAL_SEED)]["successes"] == 3 and kept["curve"] == [[100, 0.5], [200, 0.5]]
    assert kept["export"] == ["out=" + str(tmp_path / "study" / "exports" / "toto_v_p0"), "train.seed=0",
                              "tokenizer.train.seed=0", "train.lr=1e-3"]
    assert kept["export_gates"] == {"features": {"self_match": {"2": 0.6}}, "final_val_loss": 6.5}  # what the export reported
    shutil.rmtree(tmp_path / "study")  # the next sitting's machine has none of the folders
    calls.clear()
    partial = compare.compare(replace_(cfg, report_only=True))  # runs nothing, says what is missing
    assert calls == [] and "2 of 4 cells finished; not yet: kuka_pick_toto_v_grid4_Lmid_p0_s0, kuka_pick_state_s0" \
        in capsys.readouterr().out
    assert partial["runs"] == first["runs"]
    assert {r["task"] for r in partial["pooled_over_tasks"]} == {"all (1 of 2 tasks)"}  # not to be set beside full rows
    assert (tmp_path / "study" / "summary.md").read_text().startswith("2 of 4 cells finished.")
    summary = compare.compare(cfg)  # the export is made again for the cells still to run, and only those run
    assert [s for s, _ in calls] == ["pretrain.run", "sim.train_policy", "sim.eval_policy", "sim.train_policy", "sim.eval_policy"]
    assert all("kuka_pick" in " ".join(a) for s, a in calls if s != "pretrain.run")
    assert "(its record in" in capsys.readouterr().out
    assert "toto_v_p0 is 2 draws of its export" in (tmp_path / "study" / "summary.md").read_text()  # made again here
    assert len(summary["runs"]) == 4 and (tmp_path / "study" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert {r["task"] for r in summary["pooled_over_tasks"]} == {"all"}
    shutil.rmtree(tmp_path / "study")
    with pytest.raises(ValueError, match=r"toto_v_grid4_Lmid_p0_s0.json was made with \['train.lr=1e-3'\], this comparison "
                                         r"asks \['train.lr=2e-3'\]: use another records= or delete the record"):
        compare.compare(replace_(cfg, variants={"toto_v": ["train.lr=2e-3"]}))
    with pytest.raises(ValueError, match="only its record is kept .* cannot be evaluated from seed 200000"):
        compare.compare(replace_(cfg, confirm_seed=200000))


def test_an_export_another_encoder_borrows_is_made_again_when_only_records_are_kept(tmp_path, monkeypatch):
    """`random` draws its weights for encoder_path, here a variant's export: on a machine holding only the records of
    that variant's cells, the export is still made before the random cell runs, not left for the cell to fail on."""
    import shutil

    calls = []
    compare = fake_runs(monkeypatch, calls)
    study = tmp_path / "study"
    cfg = compare.CompareConfig(encoders=["toto_v"], pretrain_seeds=[0], variants={"toto_v": ["train.lr=1e-3"]},
                                episodes=4, out=str(study), records=str(tmp_path / "records"),
                                encoder_path=str(study / "exports" / "toto_v_p0" / "encoder"))
    compare.compare(cfg)
    shutil.rmtree(study)
    calls.clear()
    compare.compare(replace_(cfg, encoders=["toto_v", "random"]))
    assert [s for s, _ in calls] == ["pretrain.run", "sim.train_policy", "sim.eval_policy"]
    assert f"out={study / 'exports' / 'toto_v_p0'}" in calls[0][1] and "encoder=random" in calls[1][1]
    calls.clear()
    compare.compare(replace_(cfg, encoders=["toto_v", "random"]))  # all finished: the export is not made again
    assert calls == []


def replace_(cfg, **changes):
    return type(cfg)(**{**cfg.__dict__, **changes})


def test_report_only_reads_a_study_another_process_is_running(tmp_path):
    """The study's folder is locked by its running process; report_only trains nothing, so it reads it anyway, and
    says in one line when nothing has finished."""
    from toto_robot.lock import run_lock

    out = tmp_path / "study"
    with run_lock(out):
        done = cli("encoders=[state]", "report_only=true", f"out={out}")
        assert "no cell of this comparison has finished yet" in one_line_error(done)
        assert "is in use by PID" not in done.stderr and not (out / "franka_pick_state_s0").exists()  # nothing claimed


def test_workers_run_cells_side_by_side_with_the_same_results(tmp_path, monkeypatch):
    calls = []
    compare = fake_runs(monkeypatch, calls)
    cfg = compare.CompareConfig(tasks=["franka_pick", "kuka_pick"], encoders=["toto_v", "mae_v", "state"], pretrain_seeds=[0, 1],
                                variants={"toto_v": [], "mae_v": ["objective=mae"]}, episodes=4, out=str(tmp_path / "one"))
    one = compare.compare(cfg)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads, inner = [], compare.run_step
    monkeypatch.setattr(compare, "run_step", lambda script, args, log=None: (
        threads.append((script, (compare._children["env"] or {}).get("OMP_NUM_THREADS"))), inner(script, args, log)))
    two = compare.compare(replace_(cfg, workers=2, out=str(tmp_path / "two")))
    share = str(max(1, usable_cores() // 2))
    assert threads[0] == ("pretrain.run", None)  # the first export runs alone, on every core
    assert {t for s, t in threads[1:]} == {share}  # the other three exports and every cell: two at a time
    strip = [{k: v for k, v in row.items() if k not in ("train_minutes", "env_steps_per_s")} for row in one["runs"]]
    assert strip == [{k: v for k, v in row.items() if k not in ("train_minutes", "env_steps_per_s")} for row in two["runs"]]
    assert json.loads((tmp_path / "two" / "kuka_pick_mae_v_grid4_Lmid_p1_s0" / "cell.json").read_text())["workers"] == 2
    with pytest.raises(ValueError, match="workers=0: give how many cells run at a time"):
        compare.check(replace_(cfg, workers=0))


def test_an_also_entry_can_read_one_pretraining_seed_of_a_variant(tmp_path, monkeypatch):
    """A reference cell on one export (e.g. the only MAE export a machine has) must not make the others."""
    calls = []
    compare = fake_runs(monkeypatch, calls)
    cfg = compare.CompareConfig(tasks=["franka_pick"], encoders=["toto_v"], pretrain_seeds=[0, 1], episodes=4,
                                variants={"toto_v": [], "mae_v": ["objective=mae"]}, out=str(tmp_path),
                                also=[{"encoders": ["mae_v"], "pools": ["grid8"], "pretrain_seeds": [1]}])
    names = [c.name for c in compare.cells(cfg)]
    assert names == ["franka_pick_toto_v_grid4_Lmid_p0_s0", "franka_pick_toto_v_grid4_Lmid_p1_s0",
                     "franka_pick_mae_v_grid8_Lmid_p1_s0"]
    compare.compare(cfg)
    exports = [a for s, a in calls if s == "pretrain.run"]
    assert len(exports) == 3 and not any("mae_v_p0" in " ".join(a) for a in exports)
