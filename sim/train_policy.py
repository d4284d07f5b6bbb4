"""Train a policy on frozen features in a sim task: DAgger or BC from the task's scripted expert, or PPO.

    python sim/train_policy.py task=franka_pick                          # frozen Toto, DAgger
    python sim/train_policy.py task=kuka_cabinet encoder=state algo=bc   # privileged-state upper bound
    python sim/train_policy.py encoder=random algo.rounds=20 num_envs=2 vectorization=async
    python sim/train_policy.py algo=ppo encoder=state num_envs=16 algo.total_timesteps=1000000   # MVP's PPO (SB3)
    python sim/train_policy.py --help                                    # every option (TrainPolicyConfig)

Writes to `out` (default runs/policy/<task>_<encoder>_<algo>): policy.json (the settings, what
eval_policy.py rebuilds the run from), model.safetensors/.json (the policy: `policies.Policy.from_pretrained(out)`,
which the robot's policy node also loads) and buffer.npz (policies.train_dagger's checkpoint), metrics.jsonl
(one row per round), success_curve.png (student success vs env steps, as the paper's Fig. 6), tensorboard/
and videos/student_<i>.mp4 (`videos=N` episodes of the final
policy). `env.<option>=` sets any other env option. A rerun with the same `out` continues after the last finished round; raise
algo.rounds to train further. algo=ppo (train_ppo_run) writes ppo_state.* + ppo_optimizer.pt instead of buffer.npz, one
metrics row per PPO update, and continues up to algo.total_timesteps. The trainers are a table (sim/trainers.py: algo=<name> ->
settings and run; sim/train_runs.py owns their sim side, env and expert); the learning is in policies/, which never imports sim.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (docs/design.md section 10)

import json  # noqa: E402
import logging  # noqa: E402
from dataclasses import asdict  # noqa: E402

import hydra  # noqa: E402

from sim.policy_config import TrainPolicyConfig, check, check_choices, env_options, make_provider  # noqa: E402
from toto_robot.cli import bad_input_exits, conf_dir, hydra_entry, settings  # noqa: E402
from toto_robot.lock import run_lock  # noqa: E402
import sim  # noqa: E402
from policies import PolicyConfig  # noqa: E402
from policies.features import trained_spec  # noqa: E402
from sim.eval_policy import record_videos  # noqa: E402
from sim.trainers import settings_from_saved, trainer_of  # noqa: E402
from toto_robot.io import atomic_write  # noqa: E402
from toto_robot.resume import check_resumable  # noqa: E402

# Settings a resumed run may change; any other difference from the saved policy.json is refused,
# since it would mix rounds collected under different envs or features in one buffer.
RESUMABLE = ("algo.rounds", "algo.total_timesteps", "eval_episodes", "progress", "vectorization", "encoder.batch_size",
             "encoder.device", "videos")


def claim(out: Path, settings: dict) -> None:
    """Write policy.json, or check a previous run in `out` used the same settings."""
    path = out / "policy.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if isinstance(saved.get("algo"), dict):  # earlier versions saved every trainer's options: keep this trainer's
            saved["algo"] = asdict(settings_from_saved(saved["algo"]))
        check_resumable(out, "a run", saved, settings, RESUMABLE, "rerun with those, or pass another out=")
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(settings, indent=1))


def train(cfg: TrainPolicyConfig) -> dict:
    """Train (or continue) the run in cfg.out; returns a summary. Bad settings raise one-line ValueErrors."""
    check(cfg)
    out = Path(cfg.out)
    provider, resolution = make_provider(cfg.encoder)
    options = env_options(cfg, resolution)
    out.mkdir(parents=True, exist_ok=True)
    claim(out, asdict(cfg))
    template = policy_template(cfg, options, resolution, provider)
    summary = trainer_of(cfg.algo.name).run(cfg, out, provider, options, template)
    if cfg.videos:
        env = sim.make_env(cfg.task, **options)
        try:
            summary["videos"] = record_videos(out, provider, env, cfg.videos)
        finally:
            env.close()
    return summary


def policy_template(cfg: TrainPolicyConfig, options: dict, resolution: int | None, provider=None):
    """What the trained policy is beyond its sizes: the encoder spec (with the export's absolute path,
    fingerprint and the features' precision), the env's contract, the bound."""
    env = sim.make_env(cfg.task, **{**options, "obs_mode": "proprio+state"})  # no rendering needed to read the contract
    try:
        observation, action = env.unwrapped.contract()
    finally:
        env.close()
    encoder = cfg.encoder if provider is None else trained_spec(cfg.encoder, provider)
    return PolicyConfig(encoder=encoder, bound=trainer_of(cfg.algo.name).bound or cfg.algo.bound,
                        observation=observation, action=action, resolution=resolution)


def report(summary: dict) -> None:
    success = summary["eval_success_rate"]
    rate = "" if success is None else f", student success {success:.0%}"
    print(f"{summary['rounds']} {summary.get('unit', 'rounds')} ({summary['resumed_rounds']} resumed), "
          f"{summary['env_steps']} env steps{rate} "
          f"-> {summary['out']}\n  evaluate: python sim/eval_policy.py run={summary['out']} episodes=50")


@hydra.main(version_base="1.3", config_path=conf_dir(__file__), config_name="train_policy")
def main(cfg) -> None:
    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # hydra's INFO logging would print PyOpenGL's notices
    with bad_input_exits():
        config = settings(cfg)
        with run_lock(config.out):
            report(train(config))


cli = hydra_entry(main, check_choices)  # check_choices: before hydra, whose unknown-group message is several lines

if __name__ == "__main__":
    cli()
