"""Compose a task scene (MJCF text) from a robot file and the task's objects.

Robot files stay standalone, loadable MJCF; the scene merges their sections into one model so a
task can be rebuilt for any robot. Rendering defaults are set here for a CPU (no shadows, no
reflections, no multisampling) as measured in docs/design.md section 10, and coarse capsule/sphere
tessellation (12x6 instead of 28x16: about 2x faster Kuka frames, no visible change at 128 px).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from sim.robots import RobotSpec

TABLE_TOP = 0.0  # the robot stands on the table top; z = 0 is the surface
CUBE_HALF = 0.025
HANDLE_LENGTH = 0.08  # the handle is a fin sticking out of the drawer front, towards the robot
HANDLE_RADIUS = 0.01
HANDLE_GRASP = 0.05  # grasp point: this far out from the drawer front

THIRD_PERSON_POS = (0.35, -1.05, 0.75)
THIRD_PERSON_TARGET = (0.55, 0.0, 0.1)

_SECTIONS = ("default", "asset", "worldbody", "actuator", "contact", "equality", "tendon", "sensor")

_HEADER = """
<mujoco model="{name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep}" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <global offwidth="{offsize}" offheight="{offsize}"/>
    <quality shadowsize="0" offsamples="0" numslices="12" numstacks="6"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.55 0.55 0.55" specular="0 0 0"/>
  </visual>
  <default/>
  <asset>
    <texture name="floor_tex" type="2d" builtin="checker" rgb1="0.35 0.38 0.42" rgb2="0.3 0.33 0.37" width="64" height="64"/>
    <material name="floor" texture="floor_tex" texrepeat="8 8"/>
    <material name="table" rgba="0.62 0.5 0.38 1"/>
    <material name="cube" rgba="0.9 0.1 0.1 1"/>
    <material name="cabinet" rgba="0.75 0.78 0.8 1"/>
    <material name="drawer" rgba="0.45 0.6 0.8 1"/>
    <material name="handle" rgba="0.1 0.1 0.1 1"/>
  </asset>
  <worldbody>
    <light name="sun" pos="0.5 0 2.5" dir="0 0 -1" directional="true" castshadow="false" diffuse="0.5 0.5 0.5"/>
    <geom name="floor" type="plane" size="3 3 0.1" pos="0 0 -0.75" material="floor" contype="1" conaffinity="1"/>
    <geom name="table" type="box" size="0.6 0.6 0.375" pos="0.45 0 -0.375" material="table" contype="1" conaffinity="1"/>
    <camera name="third_person" pos="{cam_pos}" xyaxes="{cam_xyaxes}" fovy="50"/>
  </worldbody>
  <actuator/>
  <contact/>
  <equality/>
  <tendon/>
  <sensor/>
</mujoco>
"""



def look_at(pos, target) -> str:
    """MJCF `xyaxes` of a camera at pos looking at target with world z up."""
    pos, target = np.asarray(pos, float), np.asarray(target, float)
    back = pos - target
    back /= np.linalg.norm(back)  # cameras look along their -z
    x = np.cross([0.0, 0.0, 1.0], back)
    x /= np.linalg.norm(x)
    y = np.cross(back, x)
    return " ".join(f"{v:.4f}" for v in np.r_[x, y])


def build_scene_xml(name: str, objects_xml: str, robot: RobotSpec, timestep: float, image_size: int) -> str:
    """MJCF text of the whole task scene `name`: table, the task kind's objects (`objects_xml`, sim/task_kinds.py), cameras
    and the robot."""
    offsize = max(640, int(image_size))
    header = _HEADER.format(
        name=name,
        timestep=timestep,
        offsize=offsize,
        cam_pos=" ".join(map(str, THIRD_PERSON_POS)),
        cam_xyaxes=look_at(THIRD_PERSON_POS, THIRD_PERSON_TARGET),
    )
    scene = ET.fromstring(header)
    robot_root = ET.parse(robot.mjcf).getroot()
    for section in _SECTIONS:
        target = scene.find(section)
        source = robot_root.find(section)
        if source is not None and target is not None:
            target.extend(list(source))
    worldbody = scene.find("worldbody")
    worldbody.extend(ET.fromstring(f"<objects>{objects_xml}</objects>"))
    return ET.tostring(scene, encoding="unicode")
