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
metrics row per PPO update, and continues up to algo.total_timesteps. This script owns the sim side (env, expert); the learning is in
policies/, which never imports sim.
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
from policies import PolicyConfig, StateFeatures, train_dagger  # noqa: E402
from policies.curves import plot_success  # noqa: E402
from policies.demos import demo_buffer  # noqa: E402
from policies.features import trained_spec  # noqa: E402
from policies.ppo import train_ppo  # noqa: E402
from sim.eval_policy import record_videos  # noqa: E402
from sim.tasks import EnvConfig, get_task  # noqa: E402
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
        check_resumable(out, "a run", json.loads(path.read_text()), settings, RESUMABLE, "rerun with those, or pass another out=")
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(settings, indent=1))


def write_metrics(out: Path, stats: list[dict]) -> None:
    """metrics.jsonl (rewritten whole from the checkpoint's stats, so it always matches the actor) and the curve."""
    with atomic_write(out / "metrics.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in stats))  # sorted: resumed rows come back sorted
    plot_success(out / "success_curve.png", stats, title=out.name)


class RunLog:
    """A run's metrics as rounds (or PPO updates) finish: metrics.jsonl and success_curve.png
    rewritten whole, numeric values as TensorBoard scalars (tensorboard/, step = env steps).
    A resumed run purges TensorBoard events past its last saved row, so the logs read as one run."""

    def __init__(self, out: Path, previous: list[dict]):
        from torch.utils.tensorboard import SummaryWriter

        self.out, self.rows = out, list(previous)
        self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=previous[-1]["env_steps"] + 1 if previous else None)

    def append(self, row: dict) -> None:
        self.rows.append(row)
        write_metrics(self.out, self.rows)
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "env_steps":
                self.writer.add_scalar(f"policy/{key}", value, row["env_steps"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _previous_stats(out: Path) -> list[dict]:
    path = out / "model.json"
    return json.loads(path.read_text()).get("stats", []) if path.is_file() else []


def make_env(cfg: TrainPolicyConfig, options: dict):
    """The training env: one env, or `num_envs` in a gymnasium vector env."""
    if cfg.num_envs == 1:
        return sim.make_env(cfg.task, **options)
    return sim.make_vec(cfg.task, cfg.num_envs, vectorization_mode=cfg.vectorization, **options)


def train(cfg: TrainPolicyConfig) -> dict:
    """Train (or continue) the run in cfg.out; returns a summary. Bad settings raise one-line ValueErrors."""
    check(cfg)
    out = Path(cfg.out)
    provider, resolution = make_provider(cfg.encoder)
    options = env_options(cfg, resolution)
    out.mkdir(parents=True, exist_ok=True)
    claim(out, asdict(cfg))
    template = policy_template(cfg, options, resolution, provider)
    run = train_ppo_run if cfg.algo.name == "ppo" else train_dagger_run
    summary = run(cfg, out, provider, options, template)
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
    return PolicyConfig(encoder=encoder, bound="clip" if cfg.algo.name == "ppo" else cfg.algo.bound,
                        observation=observation, action=action, resolution=resolution)


def train_dagger_run(cfg: TrainPolicyConfig, out: Path, provider, options: dict, template) -> dict:
    """algo=dagger|bc: policies.train_dagger with the task's scripted expert relabelling every visited state."""
    from tqdm import tqdm

    from sim.experts import make_expert  # (lazy: mujoco)

    a = cfg.algo
    dagger = a.dagger_config(eval_episodes=cfg.eval_episodes, seed=cfg.seed)
    rounds = 1 if a.name == "bc" else a.rounds
    previous = _previous_stats(out)
    expert = make_expert(cfg.task, EnvConfig.from_kwargs(**options))  # the env's own config
    env = make_env(cfg, options)
    # env steps as they are collected (a default round is 8,192 of them), the round and its success so far
    per_round = a.steps_per_round
    bar = tqdm(total=rounds * per_round, initial=min(len(previous), rounds) * per_round,
               desc=f"{cfg.task} {cfg.encoder.kind} {a.name}", unit="step", disable=not cfg.progress)
    log = RunLog(out, previous)
    last_eval = {"eval": "-"}

    def on_step(done: dict) -> None:
        bar.update(done["round"] * per_round + min(done["steps"], per_round) - bar.n)
        rate = f"{done['successes'] / done['episodes']:.0%}" if done["episodes"] else "-"
        bar.set_postfix(round=f"{done['round'] + 1}/{rounds}", rollout_success=rate, **last_eval, refresh=False)

    def on_round(row: dict) -> None:
        log.append(row)
        success = row.get("eval_success_rate", row["success_rate"])
        last_eval.update(eval="-" if success is None else f"{success:.0%}", loss=f"{row['train_loss']:.4f}")
        bar.update((row["round"] + 1) * per_round - bar.n)
        bar.set_postfix(round=f"{row['round'] + 1}/{rounds}", **last_eval)

    demos = None if a.demos is None or previous else read_demos(a.demos, cfg.task, provider)
    try:
        _, stats = train_dagger(env, provider, expert, dagger, out_dir=out, callback=on_round, demos=demos, template=template,
                                on_step=on_step)
    finally:
        bar.close()
        log.close()
        env.close()
    write_metrics(out, stats)  # also when nothing was left to do (a finished run rerun)
    last = stats[-1]
    return {"out": str(out), "rounds": len(stats), "resumed_rounds": min(len(previous), len(stats)),
            "env_steps": last["env_steps"], "eval_success_rate": last.get("eval_success_rate")}


def read_demos(path: str, task: str, provider):
    """The demo file's rows through the run's features; a file of another task is one ValueError line."""
    if not Path(path).is_file():
        raise ValueError(f"algo.demos={path}: no such file (record demos with python sim/record.py task={task})")
    buffer, env_args = demo_buffer(path, provider)
    if env_args["env_name"] != get_task(task).env_id:
        raise ValueError(f"algo.demos={path} holds {env_args['env_name']} demos, this run trains {task} ({get_task(task).env_id})")
    return buffer


def train_ppo_run(cfg: TrainPolicyConfig, out: Path, provider, options: dict, template) -> dict:
    """algo=ppo: policies.ppo.train_ppo on num_envs copies of the task's env (dense reward, is_success).

    Writes ppo_state.* and ppo_optimizer.pt (for resuming, no pickle), model.safetensors/.json (the
    policy mean as a policies.Policy: what eval_policy.py and the robot load), metrics.jsonl (one row per PPO
    update; success_rate is over the last 100 finished training episodes, stochastic actions)
    and success_curve.png. A rerun continues up to algo.total_timesteps.
    """
    from tqdm import tqdm


    a = cfg.algo
    config = a.ppo_config(n_envs=cfg.num_envs, seed=cfg.seed)
    previous = _previous_stats(out)
    log = RunLog(out, previous)
    bar = tqdm(total=a.total_timesteps, initial=min(previous[-1]["env_steps"] if previous else 0, a.total_timesteps),
               desc=f"{cfg.task} {cfg.encoder.kind} ppo", unit="step", disable=not cfg.progress)

    def on_update(row: dict) -> None:
        log.append(row)
        success = row["success_rate"]
        bar.set_postfix(loss=f"{row.get('loss', float('nan')):.3f}", success="-" if success is None else f"{success:.0%}")
        bar.update(row["env_steps"] - bar.n)

    try:
        _, stats = train_ppo(lambda: sim.make_env(cfg.task, **options), provider, config, a.total_timesteps, out_dir=out,
                             proprio_key=None if isinstance(provider, StateFeatures) else "proprio", callback=on_update,
                             template=template)
    finally:
        bar.close()
        log.close()
    write_metrics(out, stats)
    last = stats[-1] if stats else {"env_steps": 0}
    return {"out": str(out), "rounds": len(stats), "resumed_rounds": min(len(previous), len(stats)),
            "env_steps": last["env_steps"], "eval_success_rate": last.get("success_rate"), "unit": "updates"}


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
