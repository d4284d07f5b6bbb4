"""Recorder node: demonstrations by hand-guiding the arm -> one robomimic-schema HDF5 per episode.

Parameters = real.config's `recorder` section. The node keeps the newest `sensor_msgs/Image`
(rgb8 or bgr8), `sensor_msgs/JointState` and gripper width (`std_msgs/Float64`, metres) and,
while an episode is open, takes one sample per tick at `rate_hz`: the frame through
`real.preprocess.preprocess_frame` (the one image path of BC and the policy node), the 7 joint
positions and the width. A tick whose inputs are missing, unusable or older than two periods is
skipped and counted by reason (logged at stop): a gap is better than pairing an old frame with a
new pose.

Services: `~/start` (Trigger) opens an episode and asks the franka node (`guiding_service`,
SetBool true) to stop streaming and free the arm for hand-guiding; `~/stop` (SetBool, data = the
demo succeeded) saves the episode and hands the arm back (SetBool false); `~/discard` (Trigger)
drops it. The guiding call is asynchronous (call_async + done callback): the node spins on a
SingleThreadedExecutor, which must stay free to receive the reply.

An episode lives in memory (128 px frames: ~0.5 MB/s at 10 Hz) and is written at stop as
`<out_dir>/episode_<NNNN>.hdf5` (numbering after the highest existing one) by
`toto_robot.demos.write_demo_file`: a hidden temporary file in the same directory, fsynced, then
renamed. So a crash, even SIGKILL, mid-episode or mid-write never touches saved episodes nor leaves
a half file under an episode name; leftover temporaries (`.episode_*.tmp`) are only reported.
Layout (real/demo_layout.py): proprio = 7 joints + width (gripper_obs "width_m"); actions = joint
deltas q[t+1] - q[t] + gripper target (1 when the next width is below GRIPPER_CLOSED_BELOW_M);
the last sample has no action and is dropped. `python real/train_bc.py data=<out_dir>` trains on them.
"""
from __future__ import annotations

import collections
import re
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from real.config import RecorderConfig
from real.demo_layout import GRIPPER_CLOSED_BELOW_M, NUM_JOINTS, RealLayout, deltas_from_joints, read_layout
from real.nodes import ConfigError, declare_section, run_node
from real.nodes.policy import LatestMessage, image_to_rgb
from real.preprocess import preprocess_frame
from toto_robot.demos import Demo, write_demo_file
from toto_robot.io import TEMP_SUFFIX

EPISODE_NAME = re.compile(r"episode_(\d+)\.hdf5")
STALE_PERIODS = 2.0  # inputs older than this many sampling periods are not recorded
SKIP_REASONS = ("no_image", "no_joint_state", "no_gripper", "stale_image", "stale_joint_state", "stale_gripper",
                "bad_input")


def prepare_out_dir(out_dir: str) -> Path:
    """Create `out_dir` and prove it writable now, not at the first stop after a long demonstration."""
    path = Path(out_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe", suffix=TEMP_SUFFIX):
            pass
    except OSError as e:
        raise ConfigError(f"recorder.out_dir: cannot write episodes to {path} ({e.strerror or e})") from None
    return path


def next_episode(out_dir: Path) -> int:
    """One past the highest episode number in `out_dir` (0 when there is none)."""
    numbers = [int(m.group(1)) for p in out_dir.iterdir() if (m := EPISODE_NAME.fullmatch(p.name))]
    return max(numbers, default=-1) + 1


def episode_demo(frames: list, joints: list, widths: list, success: bool, seed: int = 0) -> Demo:
    """T >= 2 samples -> a Demo of T-1 steps in real.demo_layout's joint-delta, width_m layout."""
    joints, widths = np.asarray(joints, np.float32), np.asarray(widths, np.float32)
    steps = len(joints) - 1
    rewards, dones = np.zeros(steps, np.float32), np.zeros(steps, bool)
    rewards[-1], dones[-1] = float(success), True  # RLDS convention: the outcome on the final step
    closed_next = (widths[1:] < GRIPPER_CLOSED_BELOW_M).astype(np.float32)
    proprio = np.concatenate([joints, widths[:, None]], axis=1)[:-1]
    return Demo(actions=deltas_from_joints(joints, closed_next), rewards=rewards, dones=dones,
                states=np.zeros((steps, 0), np.float32), obs={"pixels": np.stack(frames[:-1]), "proprio": proprio},
                success=bool(success), seed=seed)


try:
    from rclpy.node import Node as _NodeBase
except ImportError:  # the helpers above work without ROS; RecorderNode needs rclpy
    _NodeBase = object


class RecorderNode(_NodeBase):
    """See the module docstring. `config` gives the parameter defaults (ROS overrides win)."""

    def __init__(self, config: RecorderConfig | None = None, name: str = "recorder", **node_kwargs):
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float64
        from std_srvs.srv import SetBool, Trigger

        super().__init__(name, **node_kwargs)
        self.config = cfg = declare_section(self, "recorder", config or RecorderConfig())
        self.out_dir = prepare_out_dir(cfg.out_dir)
        leftovers = sorted(self.out_dir.glob(f".episode_*{TEMP_SUFFIX}"))
        if leftovers:
            self.get_logger().warning(f"{len(leftovers)} unfinished episode write(s) in {self.out_dir} (e.g. "
                                      f"{leftovers[0].name}) from an interrupted run: ignored, safe to delete")
        self.layout = RealLayout(cfg.resolution, source="recorder", gripper_obs="width_m", action_mode="joint_delta",
                                 control_hz=cfg.rate_hz)
        self._SetBool = SetBool
        self.image, self.joints, self.gripper = LatestMessage(), LatestMessage(), LatestMessage()
        self.episode: dict[str, list] | None = None  # frames, joints, widths while an episode is open
        self.skipped: collections.Counter[str] = collections.Counter()
        self.saved: list[Path] = []
        self.create_subscription(Image, cfg.image_topic, self.image.put, 1)
        self.create_subscription(JointState, cfg.joint_state_topic, self.joints.put, 1)
        self.create_subscription(Float64, cfg.gripper_topic, self.gripper.put, 1)
        self.guiding = self.create_client(SetBool, cfg.guiding_service) if cfg.guiding_service else None
        self.guiding_name = self.resolve_service_name(cfg.guiding_service) if cfg.guiding_service else ""
        self.create_service(Trigger, "~/start", self._on_start)
        self.create_service(SetBool, "~/stop", self._on_stop)
        self.create_service(Trigger, "~/discard", self._on_discard)
        self.create_timer(1.0 / cfg.rate_hz, self._on_tick)
        self.get_logger().info(f"recording {cfg.image_topic}, {cfg.joint_state_topic}, {cfg.gripper_topic} at "
                               f"{cfg.rate_hz:g} Hz, {cfg.resolution} px -> {self.out_dir}/episode_<n>.hdf5 "
                               "(services ~/start, ~/stop, ~/discard)")

    # -- sampling ---------------------------------------------------------------------------
    def _skip_reason(self, now: float) -> str | None:
        max_age = STALE_PERIODS / self.config.rate_hz
        for what, latest in (("image", self.image), ("joint_state", self.joints), ("gripper", self.gripper)):
            if latest.msg is None:
                return f"no_{what}"
            if latest.age(now) > max_age:
                return f"stale_{what}"
        return None

    def _on_tick(self) -> None:
        if self.episode is None:
            return
        reason = self._skip_reason(time.monotonic())
        if reason is None:
            try:
                frame = preprocess_frame(image_to_rgb(self.image.msg), self.config.resolution)
                q = np.asarray(self.joints.msg.position, np.float64)
                width = float(self.gripper.msg.data)
                if q.shape != (NUM_JOINTS,) or not np.isfinite([*q, width]).all():
                    raise ValueError(f"expected {NUM_JOINTS} finite joint positions and a finite width, got "
                                     f"{q.tolist()} and {width}")
            except ValueError as e:
                reason = "bad_input"
                self.get_logger().warning(f"sample skipped: {' '.join(str(e).split())}", throttle_duration_sec=1.0)
        if reason is not None:
            self.skipped[reason] += 1
            return
        for key, value in (("frames", frame), ("joints", q), ("widths", width)):
            self.episode[key].append(value)

    # -- services ---------------------------------------------------------------------------
    def _on_start(self, request, response):
        if self.episode is not None:
            response.success = False
            response.message = (f"an episode is already open ({len(self.episode['joints'])} samples): "
                                "call stop or discard first")
            return response
        self.episode = {"frames": [], "joints": [], "widths": []}
        self.skipped.clear()
        response.success, response.message = True, "recording" + self._set_guiding(True)
        self.get_logger().info(response.message)
        return response

    def _on_stop(self, request, response):
        episode, self.episode = self.episode, None
        if episode is None:
            response.success, response.message = False, "no episode is open: call start first"
            return response
        note = self._set_guiding(False)
        n, skipped = len(episode["joints"]), dict(self.skipped)
        response.success = False
        if n < 2:
            response.message = f"not saved: {n} sample(s), an episode needs at least 2"
        else:
            try:
                path = self._save(episode, bool(request.data))
                response.success = True
                response.message = f"saved {path} ({n - 1} steps, success={bool(request.data)})"
            except (OSError, ValueError) as e:
                response.message = f"could not save the episode: {' '.join(str(e).split())}"
        response.message += f"; skipped ticks {skipped}{note}"
        if response.success:  # one severity per logging call site: rclpy refuses to mix them
            self.get_logger().info(response.message)
        else:
            self.get_logger().error(response.message)
        return response

    def _on_discard(self, request, response):
        episode, self.episode = self.episode, None
        if episode is None:
            response.success, response.message = False, "no episode is open"
            return response
        response.success = True
        response.message = f"discarded {len(episode['joints'])} samples" + self._set_guiding(False)
        self.get_logger().info(response.message)
        return response

    def _save(self, episode: dict, success: bool) -> Path:
        index = next_episode(self.out_dir)
        path = self.out_dir / f"episode_{index:04d}.hdf5"
        # demo_<index>: unique across the directory, so train_bc can merge the files as they are
        write_demo_file(path, index, episode_demo(episode["frames"], episode["joints"], episode["widths"], success,
                                                  seed=index), self.layout.env_args())
        read_layout(path)  # what BC reads: schema and layout checked once more
        self.saved.append(path)
        return path

    # -- hand-guiding -----------------------------------------------------------------------
    def _set_guiding(self, on: bool) -> str:
        """Ask the franka node to free (on) or take back the arm, without waiting; "" or a note on failure."""
        if self.guiding is None:
            return ""
        if not self.guiding.service_is_ready():
            problem = (f"guiding service {self.guiding_name} is not available: "
                       + ("the arm was not freed for hand-guiding" if on else "the arm was not handed back"))
            self.get_logger().error(problem)
            return f"; {problem}"
        future = self.guiding.call_async(self._SetBool.Request(data=on))
        future.add_done_callback(partial(self._on_guiding_done, on))
        return ""

    def _on_guiding_done(self, on: bool, future) -> None:
        try:
            result = future.result()
            ok, text = bool(result.success), result.message
        except Exception as e:  # noqa: BLE001 - a failed call is reported, never raised into the executor
            ok, text = False, " ".join(str(e).split()) or type(e).__name__
        if ok:
            self.get_logger().info(f"guiding {'on' if on else 'off'}: {text}")
        else:
            self.get_logger().error(f"guiding service {self.guiding_name} refused data={on}: {text}")

    def close(self) -> None:
        if self.episode is not None:
            self.get_logger().warning(f"shutting down with an open episode of {len(self.episode['joints'])} "
                                      "samples: not saved")


def main(args=None) -> int:
    return run_node("recorder_node", RecorderNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
