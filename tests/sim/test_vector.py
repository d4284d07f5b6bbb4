"""gymnasium's own vector API (sync and subprocess async) drives the tasks."""
import numpy as np
import pytest

import sim
from sim.env import TotoTaskEnv


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_env_steps_two_copies(mode):
    TotoTaskEnv("franka_pick", image_size=32).reset(seed=0)  # EGL used in this process before workers start
    envs = sim.make_vec("franka_pick", num_envs=2, vectorization_mode=mode, image_size=32)
    try:
        obs, _ = envs.reset(seed=[0, 1])
        assert obs["pixels"].shape == (2, 32, 32, 3)
        assert not np.array_equal(obs["state"][0], obs["state"][1])  # different seeds per copy
        for _ in range(3):
            obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert reward.shape == (2,) and obs["proprio"].shape == (2, 18)
        assert "success" in info
    finally:
        envs.close()
