"""The gymnasium contract of every task: spaces, API checkers, determinism, bad input."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import sim
from sim.env import TotoTaskEnv
from sim.tasks import TASKS

SMALL = {"image_size": 48}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_gymnasium_and_sb3_checkers_pass(task):
    env = TotoTaskEnv(task, **SMALL)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(TotoTaskEnv(task, **SMALL), warn=False)
    env.close()


@pytest.mark.parametrize("task", sorted(TASKS))
def test_registered_ids_make_the_right_task(task):
    env = gym.make(TASKS[task].env_id, obs_mode="proprio+state")
    assert env.unwrapped.task.name == task
    expected_dim = {"franka": 9, "kuka": 23}[TASKS[task].robot]
    assert env.action_space.shape == (expected_dim,)
    assert set(env.observation_space.spaces) == {"proprio", "state"}
    env.close()


def test_same_seed_same_observation_and_trajectory():
    def rollout(seed):
        env = TotoTaskEnv("franka_pick", **SMALL)
        obs, _ = env.reset(seed=seed)
        frames, states = [obs["pixels"]], [obs["state"]]
        actions = np.random.default_rng(1).uniform(-1, 1, size=(15, 9))
        for a in actions:
            obs, *_ = env.step(a)
            frames.append(obs["pixels"])
            states.append(obs["state"])
        return np.array(frames), np.array(states)

    frames_a, states_a = rollout(7)
    frames_b, states_b = rollout(7)
    frames_c, _ = rollout(8)
    assert np.array_equal(frames_a, frames_b) and np.array_equal(states_a, states_b)
    assert not np.array_equal(frames_a[0], frames_c[0])  # the seed really randomises the scene


def test_reset_randomises_joints_within_the_configured_noise():
    env = TotoTaskEnv("kuka_pick", obs_mode="state", init_joint_noise=0.125)
    home = np.array(env.robot.home[:7])
    offsets = []
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        offsets.append(obs["state"][env.state_layout["joint_pos"]][:7] - home)
    offsets = np.abs(np.array(offsets))
    assert offsets.max() <= 0.125 + 1e-4 and offsets.max() > 0.08


def test_proprio_is_mvp_scaled():
    env = TotoTaskEnv("franka_pick", obs_mode="proprio+state")
    obs, _ = env.reset(seed=0)
    q = obs["state"][env.state_layout["joint_pos"]]
    lo, hi = env._lower, env._upper
    assert np.allclose(obs["proprio"][:9], 2 * (q - lo) / (hi - lo) - 1, atol=1e-5)
    assert np.all(np.abs(obs["proprio"][:9]) <= 1)


@pytest.mark.parametrize(
    "action, message",
    [(np.zeros(8), "shape"), (np.full(9, np.nan), "NaN"), (np.r_[np.zeros(8), np.inf], "NaN or inf")],
)
def test_bad_actions_raise_before_physics(action, message):
    env = TotoTaskEnv("franka_pick", obs_mode="state")
    env.reset(seed=0)
    before = env.data.qpos.copy()
    with pytest.raises(ValueError, match=message):
        env.step(action)
    assert np.array_equal(before, env.data.qpos)


def test_out_of_range_actions_are_clipped_and_targets_stay_in_joint_limits():
    env = TotoTaskEnv("franka_pick", obs_mode="state")
    env.reset(seed=0)
    for _ in range(80):
        _, _, _, _, info = env.step(np.full(9, 50.0))
    assert info["action_clipped"]
    assert np.all(env._target <= env._upper) and np.all(env._target >= env._lower)


def test_unknown_task_and_option_list_the_valid_ones():
    with pytest.raises(ValueError, match="franka_pick, franka_cabinet, kuka_pick, kuka_cabinet"):
        sim.make_env("franka_pik")
    with pytest.raises(ValueError, match="valid options"):
        TotoTaskEnv("franka_pick", image_sise=64)
    with pytest.raises(ValueError, match="obs_mode"):
        TotoTaskEnv("franka_pick", obs_mode="pixels+depth")


def test_physics_instability_ends_the_episode_and_is_counted():
    env = TotoTaskEnv("franka_pick", **SMALL)
    env.reset(seed=0)
    env.data.qvel[:] = 1e12  # blow the integrator up
    obs, reward, terminated, truncated, info = env.step(np.zeros(9))
    assert info["physics_error"] and terminated and not info["success"]
    assert env.physics_errors == 1
    assert all(np.all(np.isfinite(v)) for v in obs.values())
    assert env.observation_space.contains(obs)
    obs, _ = env.reset(seed=1)  # the env is usable again
    env.step(np.zeros(9))


def test_cube_falling_off_the_table_terminates():
    env = TotoTaskEnv("franka_pick", obs_mode="state")
    env.reset(seed=0)
    env.data.qpos[env.kind.cube_qpos : env.kind.cube_qpos + 3] = (0.5, 0.9, 0.03)  # beyond the table edge
    terminated = False
    for _ in range(20):
        _, _, terminated, _, info = env.step(np.zeros(9))
        if terminated:
            break
    assert terminated and info["object_lost"] and not info["success"]


def test_episode_truncates_at_the_configured_length():
    env = TotoTaskEnv("franka_cabinet", obs_mode="state", episode_seconds=1.0, control_hz=10.0)
    env.reset(seed=0)
    flags = [env.step(np.zeros(9))[3] for _ in range(10)]
    assert flags == [False] * 9 + [True]
