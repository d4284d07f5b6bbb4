"""Cameras see what the tasks need: the cube from the wrist at the pre-grasp pose, non-blank frames."""
import numpy as np
import pytest

from sim.env import TotoTaskEnv
from sim.experts import make_expert
from sim.experts.top_down import APPROACH_HEIGHT
from sim.gl import RenderingUnavailable


def red_pixels(image: np.ndarray) -> int:
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return int(np.sum((r > 150) & (g < 80) & (b < 80)))


@pytest.mark.parametrize("task", ["franka_pick", "kuka_pick"])
def test_cube_is_visible_in_the_wrist_camera_at_pre_grasp(task):
    env = TotoTaskEnv(task, image_size=96)
    expert = make_expert(task)
    obs, _ = env.reset(seed=3)
    layout = env.state_layout
    for _ in range(60):  # the expert moves above the cube first
        obs, *_ = env.step(expert(obs["state"]))
        rel = obs["state"][layout["cube_pos"]] - obs["state"][layout["grasp_pos"]]
        if np.linalg.norm(rel[:2]) < 0.01 and abs(-rel[2] - APPROACH_HEIGHT) < 0.02:
            break
    else:
        pytest.fail("the expert never reached the pre-grasp pose")
    assert red_pixels(obs["pixels"]) > 0.01 * 96 * 96


@pytest.mark.parametrize("task", ["franka_pick", "franka_cabinet", "kuka_pick", "kuka_cabinet"])
def test_frames_are_not_blank(task):
    env = TotoTaskEnv(task, image_size=64)
    env.reset(seed=0)
    for camera in ("wrist", "third_person"):
        frame = env.render_camera(camera)
        assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
        assert frame.std() > 10


def test_third_person_camera_selectable_and_render_mode():
    env = TotoTaskEnv("franka_pick", image_size=64, camera="third_person", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert np.array_equal(obs["pixels"], env.render())
    assert red_pixels(obs["pixels"]) > 0  # the cube is in view of the fixed camera too


def test_any_image_size_works():
    env = TotoTaskEnv("franka_pick", image_size=224, obs_mode="pixels")
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == (224, 224, 3)


def test_failed_gl_context_names_the_debian_packages(monkeypatch):
    import mujoco

    def broken(*args, **kwargs):
        raise RuntimeError("no display")

    monkeypatch.setattr(mujoco, "Renderer", broken)
    env = TotoTaskEnv("franka_pick", image_size=32)
    with pytest.raises(RenderingUnavailable, match="libegl1.*libosmesa6"):
        env.reset(seed=0)
