"""Count aborts of the two-rank test's launches: the DDP launch, then the FSDP launch resuming it
(tests/pretrain/test_distributed.py: 2 gloo ranks on CPU, one thread each), `--runs` times.

    python scripts/count_dist_aborts.py --runs 300            # ~17 s a run on an idle 2-core machine
    python scripts/count_dist_aborts.py --runs 300 --out runs/dist_aborts   # resumes: finished runs are kept

Why: a rank used to abort at interpreter exit, now and then ("terminate called without an active
exception"): the process group outlived `teardown` (pretrain/distributed.py says what kept it alive),
so its gloo threads still ran while the interpreter shut down. Per launch this records its exit code,
whether stderr holds "terminate called" (an abort; a signal exit counts too) and the gloo threads rank 0
still had after leaving the group. One JSON line per run in <out>/runs.jsonl; the summary in
<out>/summary.json. Exit code 1 when any launch aborted or failed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers live in tests/, which is not an installed package

from tests.pretrain.test_distributed import DDP, FSDP, launch  # noqa: E402
from tests.pretrain.train_worker import make_data, write_spec  # noqa: E402

ABORT = "terminate called"


def one_run(data: Path, work: Path) -> dict:
    """Both launches in a fresh folder; what each ended with."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    record = {}
    for name, settings in (("ddp", DDP), ("fsdp", FSDP)):
        spec = write_spec(data, work / "out", work / f"{name}.json", **settings)
        start = time.time()
        done = launch(spec, timeout=600)
        summary = work / "out" / "summary.json"
        threads = json.loads(summary.read_text()).get("gloo_threads_after_teardown") if done.returncode == 0 else None
        record[name] = {"returncode": done.returncode, "aborted": ABORT in done.stderr or done.returncode < 0,
                        "seconds": round(time.time() - start, 1), "gloo_threads_after_teardown": threads,
                        "stderr_tail": done.stderr[-600:] if done.returncode else ""}
        if done.returncode:
            break  # the FSDP launch resumes the DDP one: nothing to resume
        summary.unlink()
    return record


def summarize(records: list[dict]) -> dict:
    launches = [r[name] for r in records for name in ("ddp", "fsdp") if name in r]
    return {"runs": len(records), "launches": len(launches), "aborts": sum(x["aborted"] for x in launches),
            "other_failures": sum(x["returncode"] != 0 and not x["aborted"] for x in launches),
            "launches_with_gloo_threads_left": sum(bool(x["gloo_threads_after_teardown"]) for x in launches),
            "mean_run_seconds": round(sum(x["seconds"] for x in launches) / max(1, len(records)), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="runs of the two launches (default 300)")
    parser.add_argument("--out", default="runs/dist_aborts", help="results folder; rerun to resume")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "runs.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp) / "tokens")
        for index in range(len(records), args.runs):
            record = {"run": index, **one_run(data, Path(tmp) / "run")}
            records.append(record)
            with log.open("a") as f:
                f.write(json.dumps(record) + "\n")
            totals = summarize(records)
            print(f"run {index + 1}/{args.runs}: aborts {totals['aborts']}, other failures {totals['other_failures']}, "
                  f"launches with gloo threads left {totals['launches_with_gloo_threads_left']}", flush=True)
    totals = summarize(records[:args.runs])
    (out / "summary.json").write_text(json.dumps(totals, indent=2) + "\n")
    print(json.dumps(totals))
    return 1 if totals["aborts"] or totals["other_failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
