"""MuJoCo implementation of the four MVP-style tasks as one gymnasium env.

One class serves every task: the task spec picks the robot and the task kind (sim/task_kinds.py:
the objects, their reset, goal, failure, reward and state), EnvConfig the options.
Observations are a Dict of `pixels` (wrist or third-person camera), `proprio` (MVP's scaled joint
positions and 0.1 x velocities) and `state` (privileged task state for experts and upper bounds).
Actions are delta joint-position targets in [-1, 1] per joint, scaled by the robot's per-step
limits and clamped to the joint range.
"""
from __future__ import annotations

import os

import gymnasium as gym
import numpy as np

from sim.gl import DEBIAN_HINT, RenderingUnavailable, choose_backend

choose_backend()
import mujoco  # noqa: E402  (after the GL backend is chosen)

from sim.robots import ROBOTS  # noqa: E402
from sim.scene import build_scene_xml  # noqa: E402
from sim.task_kinds import TASK_KINDS, state_layout  # noqa: E402
from sim.tasks import EnvConfig, get_task  # noqa: E402

VELOCITY_SCALE = 0.1  # MVP's proprio: joint velocities times this
VELOCITY_BOUND = 10.0  # bound of the 0.1 x joint velocity part of `proprio`
STATE_BOUND = 100.0  # `state` holds positions (m), angles (rad) and quaternions: far inside this


class TotoTaskEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, task: str = "franka_pick", render_mode: str | None = None, **options):
        self.task = get_task(task)
        self.robot = ROBOTS[self.task.robot]
        self.config = EnvConfig.from_kwargs(**options)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r}: only 'rgb_array' is supported")
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.config.control_hz}

        xml = build_scene_xml(self.task.name, TASK_KINDS[self.task.kind].objects_xml, self.robot, self.config.physics_timestep,
                              self.config.image_size)
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self._index_model()
        self._build_spaces()

        self._renderer: mujoco.Renderer | None = None
        self.physics_errors = 0  # episodes ended by a physics instability, over this env's life
        self._target = np.zeros(self.robot.action_dim)
        self._hold = 0
        self._steps = 0

    # ----- setup -------------------------------------------------------------------------------
    def _index_model(self) -> None:
        m, robot = self.model, self.robot
        joint_ids = [m.joint(name).id for name in robot.joints]
        self._qpos_idx = np.array([m.jnt_qposadr[j] for j in joint_ids])
        self._dof_idx = np.array([m.jnt_dofadr[j] for j in joint_ids])
        self._ctrl_idx = np.array([int(np.flatnonzero(m.actuator_trnid[:, 0] == j)[0]) for j in joint_ids])
        self._lower = m.jnt_range[joint_ids, 0].copy()
        self._upper = m.jnt_range[joint_ids, 1].copy()
        self._home = np.clip(np.array(robot.home), self._lower, self._upper)
        self._scale = np.array(robot.action_scale)
        self._grasp_site = m.site(robot.grasp_site).id
        # MuJoCo resets the data itself on these, so a counter change is how instability shows.
        self._instability_warnings = [
            int(w) for w in (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL, mujoco.mjtWarning.mjWARN_BADQACC)
        ]
        self.kind = TASK_KINDS[self.task.kind](m, self.config)
        self._camera_ids = {name: m.camera(name).id for name in ("wrist", "third_person")}

    def _build_spaces(self) -> None:
        n = self.robot.action_dim
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)
        self._inv_half_range = 2.0 / (self._upper - self._lower)
        size = self.config.image_size
        bound = np.r_[np.ones(n), np.full(n, VELOCITY_BOUND)].astype(np.float32)
        self._proprio_bound = bound
        self.state_layout = state_layout(self.task.kind, n)
        state_dim = max(s.stop for s in self.state_layout.values())
        spaces = {
            "pixels": gym.spaces.Box(0, 255, shape=(size, size, 3), dtype=np.uint8),
            "proprio": gym.spaces.Box(-bound, bound, dtype=np.float32),
            "state": gym.spaces.Box(-STATE_BOUND, STATE_BOUND, shape=(state_dim,), dtype=np.float32),
        }
        self.observation_space = gym.spaces.Dict({k: spaces[k] for k in self.config.obs_keys})

    # ----- gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        m, d, rng = self.model, self.data, self.np_random
        mujoco.mj_resetData(m, d)
        q = self._home.copy()
        arm = len(self.robot.arm_joints)
        q[:arm] += rng.uniform(-self.config.init_joint_noise, self.config.init_joint_noise, size=arm)
        q = np.clip(q, self._lower, self._upper)
        d.qpos[self._qpos_idx] = q
        self.kind.reset(m, d, rng)
        self._target = q.copy()
        d.ctrl[self._ctrl_idx] = q
        mujoco.mj_forward(m, d)
        self._hold, self._steps = 0, 0
        self._warnings_seen = self._instability_count()
        obs = self._observe()
        return obs, {"success": False, "is_success": False, "physics_error": False}

    def step(self, action):
        action = self._check_action(action)
        clipped = np.clip(action, -1.0, 1.0)
        self._target = np.clip(self._target + clipped * self._scale, self._lower, self._upper)
        self.data.ctrl[self._ctrl_idx] = self._target
        mujoco.mj_step(self.model, self.data, nstep=self.config.substeps)
        self._steps += 1

        physics_error = self._physics_failed()
        if physics_error:
            self.physics_errors += 1
            mujoco.mj_resetData(self.model, self.data)  # keep observations finite; the episode is over
            mujoco.mj_forward(self.model, self.data)
        goal = (not physics_error) and self.kind.goal_reached(self.data)
        self._hold = self._hold + 1 if goal else 0
        success = self._hold >= self.config.success_hold_steps
        failed = (not physics_error) and self.kind.object_lost(self.data)
        terminated = physics_error or failed or (success and self.config.terminate_on_success)
        truncated = (not terminated) and self._steps >= self.config.max_steps
        reward = 0.0 if physics_error else self._reward(success)
        info = {
            "success": success,
            "is_success": success,
            "physics_error": physics_error,
            "object_lost": failed,
            "action_clipped": bool(np.any(clipped != action)),
        }
        return self._observe(), reward, terminated, truncated, info

    def render(self):
        if self.render_mode == "rgb_array":
            return self.render_camera("third_person")
        return None

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def contract(self) -> tuple[dict, dict]:
        """(observation, action) contract of a policy trained here, saved with it (policies.PolicyConfig):
        what `proprio` and the action mean, so an adapter elsewhere (real/adapter.py) can feed and execute it."""
        names = list(self.robot.joints)
        observation = {"source": "sim", "robot": self.robot.name, "task": self.task.name, "camera": self.config.camera,
                       "proprio": "scaled_joint_positions+velocities", "joints": names, "lower": self._lower.tolist(),
                       "upper": self._upper.tolist(), "velocity_scale": VELOCITY_SCALE, "proprio_bound": self._proprio_bound.tolist()}
        action = {"convention": "scaled_joint_delta", "names": names, "scale": self._scale.tolist(), "low": -1.0, "high": 1.0,
                  "control_hz": self.config.control_hz}
        return observation, action

    # ----- helpers -----------------------------------------------------------------------------
    def _check_action(self, action) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action has shape {a.shape}; {self.task.name} expects {self.action_space.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action contains NaN or inf: {a}")
        return a

    def _instability_count(self) -> int:
        return sum(int(self.data.warning[w].number) for w in self._instability_warnings)

    def _physics_failed(self) -> bool:
        d = self.data
        warned = self._instability_count() > self._warnings_seen
        return warned or not np.isfinite(d.qpos.sum() + d.qvel.sum())

    def _reward(self, success: bool) -> float:
        """MVP-style shaped reward (reach, then lift or open); DAgger and BC do not use it."""
        target, progress = self.kind.reach_and_progress(self.data)
        reach = np.linalg.norm(self.data.site_xpos[self._grasp_site] - target)
        return float(-reach + 2.0 * progress + 5.0 * success)

    def _observe(self) -> dict[str, np.ndarray]:
        obs = {}
        keys = self.config.obs_keys
        if "pixels" in keys:
            obs["pixels"] = self.render_camera(self.config.camera)
        if "proprio" in keys:
            obs["proprio"] = self._proprio()
        if "state" in keys:
            obs["state"] = self._state()
        return obs

    def _proprio(self) -> np.ndarray:
        d = self.data
        scaled = (d.qpos[self._qpos_idx] - self._lower) * self._inv_half_range - 1.0
        velocity = VELOCITY_SCALE * d.qvel[self._dof_idx]
        out = np.concatenate([scaled, velocity]).astype(np.float32)
        return np.clip(out, -self._proprio_bound, self._proprio_bound, out=out)

    def _state(self) -> np.ndarray:
        d = self.data
        parts = [d.qpos[self._qpos_idx], self._target, d.site_xpos[self._grasp_site], *self.kind.state(d)]
        return np.clip(np.nan_to_num(np.concatenate(parts)), -STATE_BOUND, STATE_BOUND).astype(np.float32)

    def render_camera(self, camera: str) -> np.ndarray:
        """uint8 HxWx3 image from a named camera ('wrist' or 'third_person')."""
        renderer = self._renderer or self._make_renderer()
        renderer.update_scene(self.data, camera=self._camera_ids[camera])
        return renderer.render()

    def render_segmentation(self, camera: str) -> np.ndarray:
        """int32 HxW geom ids seen from a named camera (-1 where no geom is): ground-truth masks
        (sim/segmentation.py), from MuJoCo's segmentation rendering of the same scene."""
        renderer = self._renderer or self._make_renderer()
        renderer.update_scene(self.data, camera=self._camera_ids[camera])
        renderer.enable_segmentation_rendering()
        try:
            ids = renderer.render()
        finally:
            renderer.disable_segmentation_rendering()
        return np.where(ids[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), ids[..., 0], -1).astype(np.int32)

    def _make_renderer(self) -> mujoco.Renderer:
        size = self.config.image_size
        try:
            self._renderer = mujoco.Renderer(self.model, height=size, width=size)
        except Exception as error:  # GL context creation fails in many library-specific ways
            raise RenderingUnavailable(f"{DEBIAN_HINT} (MUJOCO_GL={os.environ.get('MUJOCO_GL', '')}: {error})") from None
        flags = self._renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0
        return self._renderer

