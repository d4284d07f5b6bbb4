"""sim/train_policy.py and sim/eval_policy.py through their hydra CLIs: a tiny state-feature DAgger
run writes metrics, the success curve and the actor, resumes, evaluates with a Wilson CI, and bad
choices are one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from policies.curves import wilson_interval
from policies import EncoderSpec
from sim.policy_config import TrainPolicyConfig, check_choices
from sim.trainers import BCSettings, DaggerSettings, PPOSettings
from sim.train_policy import train
from tests.cli_errors import one_line_error

ROOT = Path(__file__).resolve().parents[2]
TINY = ("encoder=state", "num_envs=1", "algo.steps_per_round=150", "algo.epochs=2", "algo.batch_size=64", "eval_episodes=1",
        "videos=1", "progress=false")


def cli(script: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, f"sim/{script}.py", *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 1-round run, then the same run resumed to 2 rounds (both through the CLI)."""
    run = tmp_path_factory.mktemp("policy") / "run"
    first = cli("train_policy", *TINY, "algo.rounds=1", f"out={run}")
    assert first.returncode == 0, first.stderr[-2000:]
    one = read_metrics(run)
    second = cli("train_policy", *TINY, "algo.rounds=2", f"out={run}")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "2 rounds (1 resumed)" in second.stdout
    return run, one


def test_train_writes_run_and_resumes(run_dir):
    run, one = run_dir
    for name in ("metrics.jsonl", "success_curve.png", "model.safetensors", "model.json", "buffer.npz", "policy.json"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    assert (run / "success_curve.png").read_bytes()[:4] == b"\x89PNG"
    rows = read_metrics(run)
    assert [r["round"] for r in rows] == [0, 1] and rows[0] == one[0]  # round 0 kept, not redone
    assert [r["env_steps"] for r in rows] == [150, 300] and rows[1]["buffer"] == 300
    assert all(0 <= r["eval_success_rate"] <= 1 for r in rows)
    assert json.loads((run / "model.json").read_text())["stats"] == rows
    assert json.loads((run / "policy.json").read_text())["encoder"]["kind"] == "state"
    assert (run / "videos" / "student_0.mp4").stat().st_size > 0 and not (run / "videos" / "student_1.mp4").exists()


def test_tensorboard_holds_each_round_once(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _ = run_dir
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    losses = events.Scalars("policy/train_loss")
    assert [e.step for e in losses] == [150, 300]  # the resumed run appended round 1, nothing twice
    assert [e.value for e in losses] == pytest.approx([r["train_loss"] for r in read_metrics(run)])


def test_resume_with_other_settings_is_refused(run_dir):
    run, _ = run_dir
    line = one_line_error(cli("train_policy", *TINY, "algo.rounds=3", "algo.lr=0.01", f"out={run}"))
    assert "algo.lr=0.001" in line and len(read_metrics(run)) == 2


def test_eval_writes_json_with_ci_and_video(run_dir):
    run, _ = run_dir
    done = cli("eval_policy", f"run={run}", "episodes=2", "videos=1", "progress=false")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((run / "eval.json").read_text())
    assert result["episodes"] == 2 and len(result["per_episode"]) == 2
    low, high = result["ci95"]
    assert 0 <= low <= result["success_rate"] <= high <= 1 and result["ci_method"] == "wilson"
    assert [Path(v).name for v in result["videos"]] == ["eval_0.mp4"] and (run / "videos" / "eval_0.mp4").stat().st_size > 0
    assert "95% CI" in done.stdout
    assert (run / ".hydra").is_dir() and not (run / ".hydra" / "eval_policy.log").exists()


def test_wilson_interval():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)


@pytest.mark.parametrize("override, expected", [
    ("task=franka_pik", "unknown task 'franka_pik'; valid: franka_pick, franka_cabinet, kuka_pick, kuka_cabinet"),
    ("encoder=dino", "unknown encoder 'dino'; valid: toto, mae, random, random_trunk, state"),
    ("algo=sac", "unknown algo 'sac'; valid: dagger, bc, ppo"),
])
def test_bad_choices_are_one_line(tmp_path, override, expected):
    assert expected in one_line_error(cli("train_policy", override, f"out={tmp_path / 'x'}"))


def test_ppo_refuses_async_envs(tmp_path):
    line = one_line_error(cli("train_policy", "algo=ppo", "encoder=state", "vectorization=async", f"out={tmp_path / 'x'}"))
    assert "vectorization=sync" in line


def test_missing_encoder_says_to_pretrain(tmp_path):
    line = one_line_error(cli("train_policy", "encoder=toto", f"encoder.path={tmp_path / 'none'}", f"out={tmp_path / 'x'}"))
    assert "python pretrain/run.py" in line and "encoder.path" in line


def test_image_size_must_match_the_encoder(tmp_path):
    from tests.encoder.conftest import make_encoder_dir

    path = make_encoder_dir(tmp_path / "enc")  # 32 px frames
    settings = EncoderSpec(kind="toto", path=str(path), dtype=None)
    with pytest.raises(ValueError, match="image_size=64 but the encoder .* reads 32x32 frames: set image_size=32"):
        train(TrainPolicyConfig(encoder=settings, image_size=64, out=str(tmp_path / "run"), progress=False))


@pytest.mark.parametrize("name", ["toto", "random", "random_trunk"])
def test_pixel_encoders_train_in_process(tmp_path, name):
    """encoder=toto|random|random_trunk: wrist pixels rendered at the encoder's size (image_size unset), BC on its features."""
    from tests.encoder.conftest import make_encoder_dir

    path = make_encoder_dir(tmp_path / "enc")  # 32 px frames
    cfg = TrainPolicyConfig(encoder=EncoderSpec(kind=name, path=str(path), dtype=None, pool="avg"), eval_episodes=0, videos=0,
                            num_envs=1, out=str(tmp_path / "run"), progress=False)
    cfg.algo = BCSettings(steps_per_round=40, epochs=1)
    summary = train(cfg)
    assert summary["rounds"] == 1 and summary["env_steps"] == 40 and summary["eval_success_rate"] is None
    actor = json.loads((tmp_path / "run" / "model.json").read_text())["config"]
    assert actor["feat_dim"] == 32 and actor["proprio_dim"] == 18
    assert len(read_metrics(tmp_path / "run")) == 1 and (tmp_path / "run" / "success_curve.png").is_file()


def test_mae_encoder_runs_a_dagger_round(tmp_path):
    """encoder=mae: the MAE baseline's features drive a DAgger round like Toto's, and the policy saves its kind."""
    from tests.encoder.test_mae import make_mae_dir

    path = make_mae_dir(tmp_path / "mae")  # 32 px frames
    cfg = TrainPolicyConfig(encoder=EncoderSpec(kind="mae", path=str(path), dtype=None, pool="grid2"), eval_episodes=0,
                            videos=0, num_envs=1, out=str(tmp_path / "run"), progress=False)
    cfg.algo.rounds, cfg.algo.steps_per_round, cfg.algo.epochs = 1, 40, 1
    summary = train(cfg)
    assert summary["rounds"] == 1 and summary["env_steps"] == 40
    config = json.loads((tmp_path / "run" / "model.json").read_text())["config"]
    assert config["feat_dim"] == 4 * 32 and config["encoder"]["kind"] == "mae" and config["encoder"]["path"] == str(path)


def test_typed_command_defaults_are_the_main_jobs_protocol():
    """`python sim/train_policy.py task=franka_pick` runs what the quickstart measured (grid4, 6 x 8,192 steps, 16 envs)."""
    from toto_robot.main_job import parse_args

    cfg, main = TrainPolicyConfig(), parse_args([])
    assert (cfg.encoder.kind, cfg.encoder.pool, cfg.encoder.layer) == ("toto", "grid4", "mid")
    assert (cfg.algo.name, cfg.algo.rounds, cfg.algo.steps_per_round, cfg.num_envs) == ("dagger", 6, 8192, 16)
    assert (main.pool, main.rounds, main.steps_per_round, main.num_envs) == ("grid4", 6, 8192, 16)


def test_algorithm_defaults_have_one_source():
    """Each trainer's settings, and compare.py, take their defaults from DaggerConfig and PPOConfig."""
    from dataclasses import asdict

    from policies import DaggerConfig
    from policies.ppo import PPOConfig
    from sim.compare import CompareConfig

    for settings, source in ((DaggerSettings(), DaggerConfig()), (BCSettings(), DaggerConfig()), (PPOSettings(), PPOConfig())):
        mine, theirs = asdict(settings), asdict(source)
        shared = set(mine) & set(theirs) - {"algo"}
        assert shared and {k: mine[k] for k in shared} == {k: theirs[k] for k in shared}
    assert DaggerSettings().config(seed=3) == DaggerConfig(seed=3)
    assert BCSettings().config(seed=3) == DaggerConfig(algo="bc", rounds=1, seed=3)
    compare = CompareConfig()
    assert (compare.rounds, compare.steps_per_round, compare.num_envs) == (DaggerConfig.rounds, DaggerConfig.steps_per_round, 16)


def test_ppo_trains_in_process(tmp_path):
    """algo=ppo with state features: 2 envs x 64 steps x 2 updates; metrics, zip and the actor eval_policy loads."""
    from sim.eval_policy import load_run

    cfg = TrainPolicyConfig(encoder=EncoderSpec(kind="state"), num_envs=2, videos=0, out=str(tmp_path / "run"), progress=False)
    cfg.algo = PPOSettings(total_timesteps=256, n_steps=64, epochs=2, stats_steps=8)
    summary = train(cfg)
    assert summary["rounds"] == 2 and summary["env_steps"] == 256
    rows = read_metrics(tmp_path / "run")
    assert [r["env_steps"] for r in rows] == [128, 256] and "success_rate" in rows[0]
    assert (tmp_path / "run" / "ppo_state.safetensors").is_file() and (tmp_path / "run" / "success_curve.png").is_file()
    _, actor = load_run(tmp_path / "run")
    assert actor.config.feat_dim == 29 and actor.proprio_dim == 0 and actor.config.bound == "clip"
    assert actor.config.action["convention"] == "scaled_joint_delta" and actor.config.observation["robot"] == "franka"


def test_env_options_pass_through_to_training_and_evaluation(tmp_path):
    """env.<option>= reaches the env: 1 s episodes at 20 Hz end within 20 steps, in training and in eval_policy."""
    from sim.eval_policy import evaluate_run
    from sim.policy_config import EvalPolicyConfig

    cfg = TrainPolicyConfig(encoder=EncoderSpec(kind="state"), eval_episodes=0, videos=0, out=str(tmp_path / "run"),
                            num_envs=1, progress=False)
    cfg.algo = BCSettings(steps_per_round=100, epochs=1)
    cfg.env.episode_seconds = 1.0
    cfg.env.terminate_on_success = False
    assert train(cfg)["env_steps"] == 100
    assert read_metrics(tmp_path / "run")[0]["episodes"] >= 100 // 20
    assert json.loads((tmp_path / "run" / "policy.json").read_text())["env"]["episode_seconds"] == 1.0
    result = evaluate_run(EvalPolicyConfig(run=str(tmp_path / "run"), episodes=2, progress=False))
    assert result["episodes"] == 2
    process = cli("train_policy", "env.episode_secs=2", f"out={tmp_path / 'x'}")
    assert process.returncode != 0 and "episode_secs" in process.stderr


def test_evaluation_checks_the_export_the_policy_was_trained_on(tmp_path):
    """The run records the export's absolute path, fingerprint and feature precision; evaluating from
    another folder works, another export is one line, and allow_other_encoder names it in its own file."""
    import shutil

    from tests.encoder.conftest import make_encoder_dir
    from toto_robot.checkpoint import fingerprint, load_weights, save_weights

    path = make_encoder_dir(tmp_path / "enc")  # 32 px frames
    run = tmp_path / "run"
    cfg = TrainPolicyConfig(encoder=EncoderSpec(kind="toto", path=str(path), dtype="fp32", pool="avg"), eval_episodes=0,
                            videos=0, num_envs=1, out=str(run), progress=False)
    cfg.algo = BCSettings(steps_per_round=40, epochs=1)
    train(cfg)
    spec = json.loads((run / "model.json").read_text())["config"]["encoder"]
    assert spec["path"] == str(path.resolve()) and spec["fingerprint"] == fingerprint(path) and spec["precision"] == "fp32"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}

    def evaluate(*args):
        return subprocess.run([sys.executable, str(ROOT / "sim" / "eval_policy.py"), f"run={run}", "episodes=1", "progress=false",
                               *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # another folder

    assert evaluate().returncode == 0 and json.loads((run / "eval.json").read_text())["encoder_fingerprint"] == spec["fingerprint"]
    other = tmp_path / "other"
    shutil.copytree(path, other)
    state, meta = load_weights(other, "toto")
    state["norm.weight"] = state["norm.weight"] + 0.5
    save_weights(other, "toto", state, **{k: v for k, v in meta.items() if k != "format"})
    assert "allow_other_encoder=true" in one_line_error(evaluate(f"encoder_path={other}"))
    before = (run / "eval.json").read_text()
    assert evaluate(f"encoder_path={other}", "allow_other_encoder=true").returncode == 0
    result = json.loads((run / "eval_other_encoder.json").read_text())
    assert result["encoder_path"] == str(other) and result["encoder_fingerprint"] != result["trained_on"]
    assert (run / "eval.json").read_text() == before  # the trained export's result is kept
    assert evaluate("seed=200000").returncode == 0  # fresh episodes: their own file, eval.json kept
    assert json.loads((run / "eval_seed200000.json").read_text())["seed"] == 200000
    assert (run / "eval.json").read_text() == before


def test_a_bf16_trained_policy_acts_alike_on_an_fp32_host(tmp_path):
    """Features computed in bf16 at training, fp32 on the robot (or the reverse): the actions agree within
    0.05 of the [-1, 1] action range (measured: 0.004 at most over 20 start states, tiny encoder)."""
    import numpy as np

    import sim
    from policies import Policy
    from tests.encoder.conftest import make_encoder_dir

    path = make_encoder_dir(tmp_path / "enc")  # 32 px frames
    cfg = TrainPolicyConfig(encoder=EncoderSpec(kind="toto", path=str(path), dtype="bf16", pool="grid2"), eval_episodes=0,
                            videos=0, num_envs=1, out=str(tmp_path / "run"), progress=False)
    cfg.algo = BCSettings(steps_per_round=120, epochs=3)
    train(cfg)
    assert json.loads((tmp_path / "run" / "model.json").read_text())["config"]["encoder"]["precision"] == "bf16"
    bf16, fp32 = (Policy.from_pretrained(tmp_path / "run", dtype=d, device="cpu") for d in ("bf16", "fp32"))
    env = sim.make_env("franka_pick", obs_mode="pixels+proprio+state", image_size=32)
    gaps = []
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        gaps.append(float(np.abs(bf16.select_action(obs) - fp32.select_action(obs)).max()))
    env.close()
    assert max(gaps) < 0.05, gaps


@dataclass
class ToySettings:
    """A trainer's settings as a newcomer would add them (the `algo=toy` node)."""

    name: str = "toy"
    steps: int = 3
    bound: str = "clip"


def test_a_registered_trainer_runs_through_train_policy(tmp_path):
    """Adding a trainer is its settings, its run function and one table entry (sim/trainers.register):
    `algo=toy` then composes, is checked and runs through sim/train_policy.py with no other change."""
    from hydra import compose, initialize_config_dir

    import sim.train_policy as train_policy
    from sim import trainers
    from toto_robot.cli import conf_dir, settings

    seen = []

    def toy_run(cfg, out, provider, options, template):
        seen.append((cfg.algo.steps, template.bound, type(provider).__name__))
        return {"out": str(out), "rounds": 1, "resumed_rounds": 0, "env_steps": cfg.algo.steps, "eval_success_rate": None}

    trainers.register("toy", trainers.Trainer(ToySettings, toy_run))
    try:
        with initialize_config_dir(config_dir=conf_dir(train_policy.__file__), version_base="1.3"):
            cfg = settings(compose(config_name="train_policy", overrides=[
                "algo=toy", "algo.steps=5", "encoder=state", "num_envs=1", "videos=0", f"out={tmp_path / 'run'}"]))
        summary = train_policy.train(cfg)
        with pytest.raises(ValueError, match="unknown algo 'toys'; valid: dagger, bc, ppo, toy"):
            check_choices(["algo=toys"])
    finally:
        del trainers.TRAINERS["toy"]
    assert seen == [(5, "clip", "StateFeatures")] and summary["env_steps"] == 5
    assert json.loads((tmp_path / "run" / "policy.json").read_text())["algo"] == {"name": "toy", "steps": 5, "bound": "clip"}


def test_a_run_of_an_earlier_version_resumes_with_the_trainers_own_settings(tmp_path):
    """Before the trainer table, policy.json held one union of every trainer's options; a rerun compares only
    the options of the run's trainer, and a changed one is still refused."""
    from dataclasses import asdict

    from sim.train_policy import claim

    current = asdict(TrainPolicyConfig(out=str(tmp_path)))
    union = {**current["algo"], "total_timesteps": 100_000, "n_steps": 32, "clip": 0.1, "gamma": 0.99}  # the old AlgoSettings
    (tmp_path / "policy.json").write_text(json.dumps({**current, "algo": union}))
    claim(tmp_path, current)  # accepted, and rewritten in today's form
    assert json.loads((tmp_path / "policy.json").read_text())["algo"] == current["algo"]
    (tmp_path / "policy.json").write_text(json.dumps({**current, "algo": {**union, "lr": 0.01}}))
    with pytest.raises(ValueError, match=r"algo.lr=0.01 \(now 0.001\)"):
        claim(tmp_path, current)
