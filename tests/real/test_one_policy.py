"""One policy object for sim and real (issue: one checkpoint kind, one loader): a policy from
sim/train_policy.py and one from real/train_bc.py load through the same call and act on an
observation of their own kind; the robot's adapter feeds a sim-trained Franka policy exactly the
proprio the sim env gives, and turns its scaled actions into joint deltas and a gripper command."""
from __future__ import annotations

import numpy as np
import pytest

from policies import Policy
from real.adapter import SimFrankaAdapter, load_robot_policy
from tests.real.tiny_policy import tiny_bc_checkpoint, tiny_sim_checkpoint


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one_policy")
    return tiny_sim_checkpoint(tmp / "sim"), tiny_bc_checkpoint(tmp / "real")


def test_both_trainers_policies_load_through_one_call_and_act_on_their_own_observations(runs):
    import sim

    sim_run, real_run = runs
    sim_policy, real_policy = Policy.from_pretrained(sim_run), Policy.from_pretrained(real_run)
    assert type(sim_policy) is type(real_policy)
    env = sim.make_env("franka_pick", obs_mode="pixels+proprio+state", image_size=32)
    try:
        obs, _ = env.reset(seed=0)
        action = sim_policy.select_action(obs)  # a sim observation, as the env gives it
        assert action.shape == env.action_space.shape and np.all(np.abs(action) <= 1)
        env.step(action)
    finally:
        env.close()
    rng = np.random.default_rng(0)
    real_obs = {"pixels": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),  # a recorded demo sample (real/demo_layout.py)
                "proprio": np.r_[rng.normal(size=7), 0.04].astype(np.float32)}
    action = real_policy.select_action(real_obs)
    assert action.shape == (8,) and np.isfinite(action).all() and 0 <= action[7] <= 1
    assert sim_policy.config.action["convention"] == "scaled_joint_delta" and real_policy.config.action["convention"] == "joint_delta"


def test_the_robot_runs_the_sim_trained_policy_through_the_adapter(runs):
    sim_run, _ = runs
    robot = load_robot_policy(sim_run, dtype="fp32")
    assert isinstance(robot.adapter, SimFrankaAdapter) and robot.uses_gripper
    rng = np.random.default_rng(1)
    frame, q = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), rng.uniform(-1, 1, 7)
    action = robot.act(frame, q, 0.05, rng.normal(size=7))
    assert action.shape == (8,) and action.dtype == np.float32 and action[7] in (0.0, 1.0)
    assert np.all(np.abs(action[:7]) <= 0.05 + 1e-6)  # sim actions in [-1, 1] times the sim's 0.05 rad per step


def test_the_adapter_gives_the_proprio_the_sim_env_gives():
    import sim

    env = sim.make_env("franka_pick", obs_mode="proprio+state")
    try:
        obs, _ = env.reset(seed=3)
        for _ in range(5):  # moving, so the velocity half counts too
            obs, *_ = env.step(np.r_[np.full(7, 0.5), -1.0, -1.0].astype(np.float32))
        observation, action = env.unwrapped.contract()
        u = env.unwrapped
        q, dq = u.data.qpos[u._qpos_idx], u.data.qvel[u._dof_idx]
    finally:
        env.close()
    adapter = SimFrankaAdapter(type("Config", (), {"observation": observation, "action": action})())
    width = q[7] + q[8]  # franky reports the finger width: the two fingers' sum
    proprio = adapter.proprio(q[:7], width, dq[:7])
    arm = np.r_[0:7, 9:16]  # 7 scaled positions, 7 scaled velocities
    np.testing.assert_allclose(proprio[arm], obs["proprio"][arm], atol=1e-5)
    np.testing.assert_allclose(proprio[7:9], obs["proprio"][7:9].mean(), atol=1e-5)  # each finger at half the width
    np.testing.assert_allclose(proprio[16:], 0.0)  # the robot reports no finger velocity
    command = adapter.action(np.r_[np.full(7, 0.5), -1.0, -1.0].astype(np.float32))
    np.testing.assert_allclose(command, np.r_[np.full(7, 0.025), 1.0], atol=1e-7)
    assert adapter.action(np.r_[np.zeros(7), 1.0, 1.0].astype(np.float32))[7] == 0.0  # fingers opening: open
