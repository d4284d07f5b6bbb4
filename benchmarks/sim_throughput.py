"""Env throughput of the MuJoCo tasks, all configurations side by side in one run.

Why: data collection (DAgger, BC rollouts) is bound by env steps/s on a 2-core CPU box, so we need
to know what pixels cost (128 vs 224 px), what the state-only path costs, whether 2 async workers
pay off, and how much the gymnasium wrapper in `sim/env.py` adds on top of the bare MuJoCo loop
(mj_step x substeps + render of the same camera). Targets (docs/design.md section 10 measurements):
>= 300 env steps/s at 128 px in one process, wrapper overhead <= 15 %.

    python benchmarks/sim_throughput.py --steps 300 --tasks franka_pick kuka_cabinet
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything imports torch/OpenMP

import argparse  # noqa: E402
import time  # noqa: E402

import gymnasium as gym  # noqa: E402

import sim  # noqa: E402  (chooses MUJOCO_GL and registers the env ids)
import mujoco  # noqa: E402
from sim.env import TotoTaskEnv  # noqa: E402
from sim.tasks import TASKS  # noqa: E402
from toto_robot.compute import usable_cores  # noqa: E402

TARGET_RATE = 300.0  # env steps/s at 128 px, one process
TARGET_OVERHEAD = 0.15  # 1 - env_rate / raw_rate
WARMUP = 20


def env_stepper(task: str, **options):
    """(one-step callable, close) for `gym.make(task)` (what users get, wrappers included)."""
    env = gym.make(TASKS[task].env_id, **options)
    env.reset(seed=0)
    env.action_space.seed(0)
    # sampled up front, as the raw loop replays precomputed controls: only the wrapper is compared
    actions = iter([env.action_space.sample() for _ in range(100_000)])

    def step() -> None:
        _, _, terminated, truncated, _ = env.step(next(actions))
        if terminated or truncated:
            env.reset()

    return step, env.close


def record_controls(task: str, steps: int) -> list:
    """Per step (ctrl, restart snapshot or None) of the env's seeded random-action trajectory.

    A state-only env with the same seeds visits exactly the states the timed pixel env will
    visit (rendering does not touch physics), so the raw loop can replay them and render the
    same views: render cost depends strongly on what the camera sees.
    """
    env = TotoTaskEnv(task, obs_mode="proprio+state")
    env.reset(seed=0)
    env.action_space.seed(0)
    m, d = env.model, env.data

    def snapshot():  # cabinet resets move the cabinet body in the model itself
        return d.qpos.copy(), d.qvel.copy(), m.body_pos.copy(), m.body_quat.copy()

    plan, restart = [], snapshot()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        plan.append((d.ctrl.copy(), restart))
        restart = None
        if terminated or truncated:
            env.reset()
            restart = snapshot()
    env.close()
    return plan


def raw_stepper(task: str, steps: int, image_size: int = 128, camera: str = "wrist"):
    """(one-step callable, close) of the bare MuJoCo loop: mj_step(nstep=substeps) + render.

    It replays the env's own trajectory (record_controls) on the env's model with the env's
    renderer settings, so only the Python wrapper (action checks, reward, proprio/state, dict
    building, gymnasium wrappers) differs from the timed env.
    """
    env = TotoTaskEnv(task, image_size=image_size, camera=camera)
    env.reset(seed=0)
    m, d = env.model, env.data
    renderer = env._make_renderer()  # same CPU settings (no shadows/reflections/skybox)
    cam, substeps = m.camera(camera).id, env.config.substeps
    plan = iter(record_controls(task, WARMUP + steps))

    def step() -> None:
        ctrl, restart = next(plan)
        if restart is not None:
            d.qpos[:], d.qvel[:], m.body_pos[:], m.body_quat[:] = restart
            mujoco.mj_forward(m, d)
        d.ctrl[:] = ctrl
        mujoco.mj_step(m, d, nstep=substeps)
        renderer.update_scene(d, camera=cam)
        renderer.render()

    return step, env.close


def rates(steppers: list, steps: int, chunk: int = 50) -> list[float]:
    """Steps/s of each stepper, timed in alternating chunks so load drift hits all alike."""
    for step, _ in steppers:
        for _ in range(WARMUP):
            step()
    elapsed = [0.0] * len(steppers)
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        for i, (step, _) in enumerate(steppers):
            start = time.perf_counter()
            for _ in range(n):
                step()
            elapsed[i] += time.perf_counter() - start
        done += n
    for _, close in steppers:
        close()
    return [steps / t for t in elapsed]


def vec_rate(task: str, steps: int, num_envs: int = 2, **options) -> float:
    """Total env steps/s of an async vector env (one spawned process per worker; autoreset inside)."""
    envs = sim.make_vec(task, num_envs=num_envs, vectorization_mode="async", **options)
    try:
        envs.reset(seed=0)
        envs.action_space.seed(0)
        for _ in range(WARMUP):
            envs.step(envs.action_space.sample())
        start = time.perf_counter()
        for _ in range(steps):
            envs.step(envs.action_space.sample())
        return steps * num_envs / (time.perf_counter() - start)
    finally:
        envs.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="timed env steps per configuration")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    args = parser.parse_args(argv)

    load = os.getloadavg()
    print(f"load average at start (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cores usable={usable_cores()}")
    print(f"MUJOCO_GL={os.environ.get('MUJOCO_GL', '')} mujoco={mujoco.__version__} gymnasium={gym.__version__}")
    print(f"steps={args.steps} (+{WARMUP} warm-up), random actions, wrist camera; rates in env steps/s")
    print(f"targets: px128 >= {TARGET_RATE:.0f} steps/s (one process); wrapper overhead <= {TARGET_OVERHEAD:.0%}")
    print()

    header = f"{'task':<16}{'px128':>8}{'px224':>8}{'state':>8}{'async2x128':>12}{'raw128':>8}{'overhead':>10}  verdict"
    print(header)
    print("-" * len(header))
    pixels = "pixels+proprio+state"
    for task in args.tasks:
        # px128 and raw128 are interleaved: their ratio is the wrapper overhead
        r128, rraw = rates([env_stepper(task, obs_mode=pixels, image_size=128), raw_stepper(task, args.steps)], args.steps)
        (r224,) = rates([env_stepper(task, obs_mode=pixels, image_size=224)], args.steps)
        (rstate,) = rates([env_stepper(task, obs_mode="proprio+state")], args.steps)
        rvec = vec_rate(task, args.steps, obs_mode=pixels, image_size=128)
        overhead = 1.0 - r128 / rraw
        verdict = [
            "rate ok" if r128 >= TARGET_RATE else f"rate < {TARGET_RATE:.0f}",
            "overhead ok" if overhead <= TARGET_OVERHEAD else f"overhead > {TARGET_OVERHEAD:.0%}",
        ]
        print(
            f"{task:<16}{r128:>8.0f}{r224:>8.0f}{rstate:>8.0f}{rvec:>12.0f}{rraw:>8.0f}{overhead:>10.1%}  "
            + ", ".join(verdict),
            flush=True,
        )
    load = os.getloadavg()
    print(f"\nload average at end (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
