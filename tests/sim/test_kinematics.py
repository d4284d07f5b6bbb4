"""The MJCF arms match their manufacturers' published DH tables (independent FK in sim.robots)."""
import mujoco
import numpy as np
import pytest

from sim.robots import ROBOTS, dh_forward_kinematics


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_flange_pose_matches_published_dh(name):
    robot = ROBOTS[name]
    model = mujoco.MjModel.from_xml_path(str(robot.mjcf))
    data = mujoco.MjData(model)
    joints = [model.joint(j) for j in robot.arm_joints]
    site = model.site(robot.flange_site).id
    rng = np.random.default_rng(0)
    for _ in range(100):
        q = np.array([rng.uniform(*model.jnt_range[j.id]) for j in joints])
        data.qpos[[model.jnt_qposadr[j.id] for j in joints]] = q
        mujoco.mj_kinematics(model, data)
        expected = dh_forward_kinematics(robot.dh, q)
        assert np.linalg.norm(data.site_xpos[site] - expected[:3, 3]) <= 1e-3
        relative = expected[:3, :3].T @ data.site_xmat[site].reshape(3, 3)
        angle = np.arccos(np.clip((np.trace(relative) - 1) / 2, -1, 1))
        assert angle <= 0.01


def test_joint_ranges_are_radians_and_wide():
    """Guards the compiler setting: MJCF read in degrees would shrink every range ~57x."""
    for robot in ROBOTS.values():
        model = mujoco.MjModel.from_xml_path(str(robot.mjcf))
        first = model.joint(robot.arm_joints[0]).id
        assert model.jnt_range[first, 1] > 2.5


def test_fk_detects_a_wrong_link_length():
    """The check has teeth: one altered DH length moves the flange by centimetres."""
    robot = ROBOTS["franka"]
    q = np.array(robot.home[:7])
    altered = list(robot.dh)
    altered[2] = type(altered[2])(altered[2].alpha, altered[2].a, altered[2].d + 0.02)
    moved = dh_forward_kinematics(tuple(altered), q)[:3, 3] - dh_forward_kinematics(robot.dh, q)[:3, 3]
    assert np.linalg.norm(moved) > 0.01


def test_franka_mjcf_matches_the_shared_published_tables():
    """toto_robot.kinematics (what real/'s safety envelope uses) and the sim's MJCF agree."""
    import xml.etree.ElementTree as ET

    from sim.robots import FRANKA
    from toto_robot.kinematics import FRANKA_TCP_OFFSET, PANDA_JOINT_LIMITS

    root = ET.parse(FRANKA.mjcf)
    ranges = {j.get("name"): [float(v) for v in j.get("range").split()] for j in root.iter("joint") if j.get("name") and j.get("range")}
    assert [ranges[name] for name in FRANKA.arm_joints] == [list(pair) for pair in zip(*PANDA_JOINT_LIMITS)]
    sites = {s.get("name"): s.get("pos") for s in root.iter("site")}
    assert float(sites["panda_tcp"].split()[2]) == FRANKA_TCP_OFFSET
