"""What each trainer of `python sim/train_policy.py` runs: the sim side of DAgger/BC and of PPO.

A run function takes (cfg, out, provider, options, template) and returns the run's summary; sim/trainers.py
maps `algo=<name>` to one. The learning itself is in policies/ (which never imports sim); this module owns
the env, the expert, the progress bar and the run's logs (metrics.jsonl, success_curve.png, TensorBoard).
"""
from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

import sim
from policies import StateFeatures, train_dagger
from policies.curves import plot_success
from policies.demos import demo_buffer
from policies.ppo import train_ppo
from sim.tasks import EnvConfig, get_task
from toto_robot.io import atomic_write


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


def make_env(cfg, options: dict):
    """The training env: one env, or `num_envs` in a gymnasium vector env."""
    if cfg.num_envs == 1:
        return sim.make_env(cfg.task, **options)
    return sim.make_vec(cfg.task, cfg.num_envs, vectorization_mode=cfg.vectorization, **options)


def train_dagger_run(cfg, out: Path, provider, options: dict, template) -> dict:
    """algo=dagger|bc (sim/trainers.py): policies.train_dagger with the task's scripted expert relabelling every visited state."""
    from sim.experts import make_expert  # (lazy: mujoco)

    a = cfg.algo
    dagger = a.config(eval_episodes=cfg.eval_episodes, seed=cfg.seed)
    rounds = dagger.rounds  # (1 for bc)
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


def train_ppo_run(cfg, out: Path, provider, options: dict, template) -> dict:
    """algo=ppo: policies.ppo.train_ppo on num_envs copies of the task's env (dense reward, is_success).

    Writes ppo_state.* and ppo_optimizer.pt (for resuming, no pickle), model.safetensors/.json (the
    policy mean as a policies.Policy: what eval_policy.py and the robot load), metrics.jsonl (one row per PPO
    update; success_rate is over the last 100 finished training episodes, stochastic actions)
    and success_curve.png. A rerun continues up to algo.total_timesteps.
    """
    a = cfg.algo
    config = a.config(n_envs=cfg.num_envs, seed=cfg.seed)
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
