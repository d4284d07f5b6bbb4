"""Record scripted-expert rollouts as MP4 videos and robomimic-schema HDF5 demos, resumably.

    python sim/record.py task=franka_pick episodes=50 out=runs/record cameras=[wrist,third_person]
    python sim/record.py task=all env.episode_seconds=4 action_noise=0.1

Writes out/<task>/videos/episode_<i:05d>_<camera>.mp4, out/<task>/episodes/demo_<i>.hdf5 and the
merge out/<task>/demos.hdf5. `actions` are the *executed* actions: the expert's plus Gaussian
noise of std `action_noise`, clipped to [-1, 1] (the clean labels when action_noise=0).
`obs/pixels` is the first camera's view (the env's `camera`), other cameras go to
`obs/<camera>_pixels`. Episode i uses seed `seed + i` for the env and the noise, so reruns are
deterministic; an episode whose marker `episodes/episode_<i>.json` (written last) and files exist
is never redone.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything imports torch (docs/design.md section 10)

import json  # noqa: E402
import typing  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402

import hydra  # noqa: E402
import numpy as np  # noqa: E402
from hydra.core.config_store import ConfigStore  # noqa: E402
from tqdm import tqdm  # noqa: E402

from sim.env import TotoTaskEnv  # noqa: E402
from sim.experts import make_expert  # noqa: E402
from sim.tasks import CAMERAS, TASKS, EnvConfig, EnvOptions, get_task  # noqa: E402
from toto_robot.demos import Demo, env_args, merge_demo_files, write_demo_file  # noqa: E402
from toto_robot.cli import bad_input_exits, conf_dir, hydra_entry, settings  # noqa: E402
from toto_robot.lock import run_lock  # noqa: E402
from toto_robot.io import atomic_write, remove_stale_temps  # noqa: E402
from toto_robot.video_writer import write_mp4  # noqa: E402
from toto_robot.resume import check_resumable  # noqa: E402



@dataclass
class RecordConfig:
    task: str = "franka_pick"  # a task name, or "all" for the four tasks one after the other
    episodes: int = 50
    out: str = "runs/record"
    seed: int = 0
    action_noise: float = 0.0  # std of Gaussian noise added to the expert's actions
    image_size: int = 128
    cameras: list[str] = field(default_factory=lambda: list(CAMERAS))  # the first one is obs/pixels
    video: bool = True
    # lossless MP4s (libx264rgb, qp 0: every RGB value kept) instead of viewable H.264 yuv420p; the
    # pre-training corpus records losslessly so pre-training sees the pixels deployment sees
    lossless: bool = False
    demos: bool = True
    image_compression: typing.Optional[str] = "lzf"  # HDF5 filter of image datasets: lzf, gzip or null
    progress: bool = True
    env: EnvOptions = field(default_factory=EnvOptions)


ConfigStore.instance().store(name="record_schema", node=RecordConfig)


def _check(cfg: RecordConfig) -> None:
    if cfg.episodes < 1:
        raise ValueError(f"episodes={cfg.episodes}: record at least one episode")
    if cfg.action_noise < 0:
        raise ValueError(f"action_noise={cfg.action_noise} must be >= 0")
    cameras = list(cfg.cameras)
    if not cameras or len(set(cameras)) != len(cameras) or any(c not in CAMERAS for c in cameras):
        raise ValueError(f"cameras={cameras}: use distinct cameras from {list(CAMERAS)}")


def _rollout(env: TotoTaskEnv, expert, cfg: RecordConfig, seed: int):
    """One episode: (demo, video frames per camera, physics_error)."""
    rng = np.random.default_rng(seed)
    first, others = cfg.cameras[0], list(cfg.cameras[1:])
    keys = ("actions", "rewards", "dones", "states", "pixels", "proprio", *(f"{c}_pixels" for c in others))
    steps = {key: [] for key in keys}
    frames = {camera: [] for camera in cfg.cameras}
    obs, _ = env.reset(seed=seed)
    done, info = False, {}
    while not done:
        views = {first: obs["pixels"], **{c: env.render_camera(c) for c in others}}
        action = expert(obs["state"])
        if cfg.action_noise > 0:
            action = np.clip(action + rng.normal(0.0, cfg.action_noise, action.shape), -1.0, 1.0).astype(np.float32)
        for camera, image in views.items():
            frames[camera].append(image)
            steps["pixels" if camera == first else f"{camera}_pixels"].append(image)
        steps["proprio"].append(obs["proprio"])
        steps["states"].append(obs["state"])
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        steps["actions"].append(action)
        steps["rewards"].append(reward)
        steps["dones"].append(int(done))
    frames[first].append(obs["pixels"])  # the videos end on the final state
    for camera in others:
        frames[camera].append(env.render_camera(camera))
    arrays = {key: np.asarray(value) for key, value in steps.items()}
    demo = Demo(
        actions=arrays.pop("actions").astype(np.float32),
        rewards=arrays.pop("rewards").astype(np.float32),
        dones=arrays.pop("dones").astype(np.int64),
        states=arrays.pop("states"),
        obs=arrays,
        success=bool(info["success"]),
        seed=seed,
    )
    return demo, frames, bool(info["physics_error"])


class TaskRecorder:
    """Paths and resume logic of one task's output directory."""

    def __init__(self, cfg: RecordConfig, task: str):
        self.cfg, self.task = cfg, task
        self.dir = Path(cfg.out) / task
        self.env_kwargs = {
            **asdict(cfg.env),
            "obs_mode": "pixels+proprio+state",
            "image_size": cfg.image_size,
            "camera": cfg.cameras[0],
        }
        self.config = EnvConfig.from_kwargs(**self.env_kwargs)

    def video_path(self, i: int, camera: str) -> Path:
        return self.dir / "videos" / f"episode_{i:05d}_{camera}.mp4"

    def demo_path(self, i: int) -> Path:
        return self.dir / "episodes" / f"demo_{i}.hdf5"

    def marker_path(self, i: int) -> Path:
        return self.dir / "episodes" / f"episode_{i}.json"

    def files(self, i: int) -> list[Path]:
        videos = [self.video_path(i, c) for c in self.cfg.cameras] if self.cfg.video else []
        return videos + ([self.demo_path(i)] if self.cfg.demos else [])

    def done(self, i: int) -> dict | None:
        """The episode's result if it was completed before with the files this run asks for."""
        if self.marker_path(i).exists() and all(p.exists() for p in self.files(i)):
            return json.loads(self.marker_path(i).read_text())
        return None

    def claim(self) -> None:
        """Refuse to mix episodes recorded with different settings in one directory."""
        settings = {
            "task": self.task,
            "seed": self.cfg.seed,
            "action_noise": self.cfg.action_noise,
            "cameras": list(self.cfg.cameras),
            "lossless": self.cfg.lossless,
            "env_kwargs": self.env_kwargs,
        }
        path = self.dir / "settings.json"
        if path.exists():
            check_resumable(self.dir, "episodes", json.loads(path.read_text()), settings, hint="use another out")
            return
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(settings, indent=1))

    def record_episode(self, env: TotoTaskEnv, expert, i: int) -> dict:
        seed = self.cfg.seed + i
        demo, frames, physics_error = _rollout(env, expert, self.cfg, seed)
        if self.cfg.video:
            for camera, images in frames.items():
                write_mp4(self.video_path(i, camera), images, fps=self.config.control_hz, lossless=self.cfg.lossless)
        if self.cfg.demos:
            args = env_args(get_task(self.task).env_id, self.env_kwargs)
            write_demo_file(self.demo_path(i), i, demo, args, image_compression=self.cfg.image_compression)
        result = {"success": demo.success, "physics_error": physics_error, "num_samples": demo.num_samples, "seed": seed}
        with atomic_write(self.marker_path(i)) as tmp:
            tmp.write_text(json.dumps(result))
        return result

    def run(self) -> dict:
        cfg = self.cfg
        self.claim()
        for sub in ("episodes", "videos"):
            remove_stale_temps(self.dir / sub)
        remove_stale_temps(self.dir)
        env = TotoTaskEnv(self.task, **self.env_kwargs)
        expert = make_expert(self.task, self.config)
        results, recorded = [], 0
        bar = tqdm(range(cfg.episodes), desc=self.task, unit="ep", disable=not cfg.progress)
        try:
            for i in bar:
                result = self.done(i)
                if result is None:
                    result, recorded = self.record_episode(env, expert, i), recorded + 1
                results.append(result)
                bar.set_postfix(success=f"{np.mean([r['success'] for r in results]):.0%}")
        finally:
            bar.close()
            env.close()
        path = self.dir / "demos.hdf5" if cfg.demos else self.dir
        if cfg.demos:
            merge_demo_files([self.demo_path(i) for i in range(cfg.episodes)], path)
        summary = {
            "task": self.task,
            "episodes": len(results),
            "recorded": recorded,
            "resumed": len(results) - recorded,
            "success_rate": float(np.mean([r["success"] for r in results])),
            "physics_errors": sum(r["physics_error"] for r in results),
            "path": str(path),
        }
        print(
            f"{self.task}: {summary['episodes']} episodes ({recorded} recorded, {summary['resumed']} resumed), "
            f"success {summary['success_rate']:.1%}, physics errors {summary['physics_errors']} -> {path}"
        )
        return summary


def record(cfg: RecordConfig) -> list[dict]:
    """Record every requested task; one summary dict per task. Bad settings raise ValueError."""
    _check(cfg)
    tasks = list(TASKS) if cfg.task == "all" else [get_task(cfg.task).name]
    return [TaskRecorder(cfg, task).run() for task in tasks]


@hydra.main(version_base="1.3", config_path=conf_dir(__file__), config_name="record")
def main(cfg) -> None:
    with bad_input_exits():  # bad settings: one line, no traceback
        config = settings(cfg)
        with run_lock(config.out):
            record(config)


cli = hydra_entry(main)  # the console script's target (pyproject.toml)

if __name__ == "__main__":
    cli()
