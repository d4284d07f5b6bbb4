"""Evaluate a trained policy: success rate over N seeded episodes with a 95% Wilson interval.

    python sim/eval_policy.py run=runs/policy/franka_pick_toto_dagger episodes=50
    python sim/eval_policy.py run=... episodes=20 videos=3 camera=third_person

Rebuilds the run's env and features from its policy.json (train_policy.py), loads its actor and
runs the pure student (no expert) in a single env, episode i reset with seed `seed + i`, so the
numbers are reproducible and not biased toward short episodes as a vector env's first-to-finish
count would be. Writes <run>/eval.json (eval_seed<seed>.json for a seed other than the held-out
episodes' 100,000) and, with videos=N, <run>/videos/eval_<i>.mp4. The export must
be the one the policy was trained on (its fingerprint in model.json); `allow_other_encoder=true` runs it
on another one deliberately and writes <run>/eval_other_encoder.json, naming that export.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (docs/design.md section 10)

import json  # noqa: E402
import logging  # noqa: E402

import hydra  # noqa: E402
import numpy as np  # noqa: E402

from policies.curves import wilson_interval  # noqa: E402
from sim.tasks import EnvOptions  # noqa: E402
from policies.configuration import EncoderSpec  # noqa: E402
from sim.policy_config import EvalPolicyConfig, TrainPolicyConfig, env_options, make_provider, result_file  # noqa: E402
from sim.trainers import settings_from_saved  # noqa: E402
from toto_robot.cli import bad_input_exits, conf_dir, settings  # noqa: E402
from toto_robot.lock import run_lock  # noqa: E402
import sim  # noqa: E402
from policies import Policy  # noqa: E402
from policies.features import check_encoder  # noqa: E402
from sim.tasks import CAMERAS  # noqa: E402
from toto_robot.checkpoint import CheckpointError, read_fields  # noqa: E402
from toto_robot.io import atomic_write  # noqa: E402


def check_cameras(camera: str) -> None:
    if not camera or any(name not in CAMERAS for name in camera.split("+")):
        raise ValueError(f"camera={camera!r}: use '+'-joined names from {CAMERAS}")


def record_videos(run: Path, provider, env, count: int, camera: str = "wrist+third_person", seed: int = 10**7) -> list[str]:
    """MP4s of `count` pure-student episodes of the run's saved actor in <run>/videos/student_<i>.mp4."""
    from toto_robot.video_writer import write_mp4  # (lazy: av)

    _, actor = load_run(run)
    paths = []
    for i in range(count):
        _, frames = episode(env, provider, actor, seed + i, camera)
        paths.append(str(run / "videos" / f"student_{i}.mp4"))
        write_mp4(paths[-1], frames, fps=env.unwrapped.config.control_hz)
    return paths


def load_run(run: Path) -> tuple[TrainPolicyConfig, object]:
    """(the run's settings, its policy) from a train_policy.py run directory (the policy's encoder is built on first use)."""
    if not (run / "policy.json").is_file():
        raise ValueError(f"{run} holds no policy.json: pass run=<a directory written by python sim/train_policy.py>")

    saved = read_fields(json.loads((run / "policy.json").read_text()), TrainPolicyConfig, f"{run / 'policy.json'}", "settings")
    cfg = TrainPolicyConfig(**{**saved, "algo": settings_from_saved(saved["algo"]), "encoder": EncoderSpec(**saved["encoder"]),
                               "env": EnvOptions(**saved.get("env", {}))})
    return cfg, Policy.from_pretrained(run)


def view(env, camera: str) -> np.ndarray:
    """One video frame: the '+'-joined cameras side by side (e.g. "wrist+third_person")."""
    return np.concatenate([env.unwrapped.render_camera(name) for name in camera.split("+")], axis=1)


def episode(env, provider, actor, seed: int, camera: str | None) -> tuple[bool, list]:
    """One pure-student episode: (success, frames of `camera` if asked, see `view`)."""
    obs, _ = env.reset(seed=seed)
    frames, done, info = [], False, {}
    while not done:
        if camera:
            frames.append(view(env, camera))
        batch = {k: np.asarray(v)[None] for k, v in obs.items()}
        action = actor.act(provider(batch), batch.get("proprio"))[0]
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    if camera:
        frames.append(view(env, camera))
    return bool(info.get("success", False)), frames


def result_name(summary: dict) -> str:
    """eval.json; eval_other_encoder.json for a deliberate run on another export than the trained one's;
    either with _seed<seed> for episodes other than the usual held-out ones (EVAL_SEED on)."""
    other = summary.get("encoder_fingerprint") and summary["encoder_fingerprint"] != summary.get("trained_on")
    return result_file(summary["seed"], other=bool(other))


def evaluate_run(cfg: EvalPolicyConfig) -> dict:
    """Evaluate the run in cfg.run; writes and returns the eval.json dict."""
    from tqdm import tqdm

    from toto_robot.video_writer import write_mp4  # (lazy: av)

    if not cfg.run:
        raise ValueError("pass run=<run dir> (a directory written by python sim/train_policy.py)")
    if cfg.episodes < 1 or cfg.videos < 0:
        raise ValueError(f"episodes={cfg.episodes} must be >= 1 and videos={cfg.videos} >= 0")
    check_cameras(cfg.camera)
    run = Path(cfg.run)
    train_cfg, actor = load_run(run)

    spec = actor.config.encoder  # model.json: the export's absolute path and fingerprint (policy.json has the path as typed)
    path = cfg.encoder_path or (spec.path if spec.fingerprint else train_cfg.encoder.path)
    try:
        found = check_encoder(spec, path, cfg.allow_other_encoder)
        provider, resolution = make_provider(train_cfg.encoder, path)
    except CheckpointError as error:  # the trainer's hint names its own key; here it is encoder_path=
        raise CheckpointError(str(error).replace("encoder.path=", "encoder_path=")) from None
    env = sim.make_env(train_cfg.task, **env_options(train_cfg, resolution))
    results, videos = [], []
    bar = tqdm(range(cfg.episodes), desc=f"eval {run.name}", unit="ep", disable=not cfg.progress)
    try:
        for i in bar:
            success, frames = episode(env, provider, actor, cfg.seed + i, cfg.camera if i < cfg.videos else None)
            results.append(success)
            if frames:
                videos.append(str(run / "videos" / f"eval_{i}.mp4"))
                write_mp4(videos[-1], frames, fps=env.unwrapped.config.control_hz)
            bar.set_postfix(success=f"{np.mean(results):.0%}")
    finally:
        bar.close()
        env.close()
    k, n = sum(results), len(results)
    low, high = wilson_interval(k, n)
    summary = {"task": train_cfg.task, "encoder": train_cfg.encoder.kind, "algo": train_cfg.algo.name,
               "episodes": n, "successes": k, "success_rate": k / n, "ci95": [low, high], "ci_method": "wilson",
               "seed": cfg.seed, "per_episode": results, "videos": videos, "encoder_path": str(path),
               "encoder_fingerprint": found, "trained_on": spec.fingerprint}
    with atomic_write(run / result_name(summary)) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    return summary


@hydra.main(version_base="1.3", config_path=conf_dir(__file__), config_name="eval_policy")
def main(cfg) -> None:
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    with bad_input_exits():
        config = settings(cfg)
        with run_lock(config.run, create=False):
            s = evaluate_run(config)
    low, high = s["ci95"]
    print(f"{s['task']} {s['encoder']} {s['algo']}: success {s['successes']}/{s['episodes']} = {s['success_rate']:.0%} "
          f"(95% CI {low:.0%}-{high:.0%}) -> {Path(cfg.run) / result_name(s)}")


if __name__ == "__main__":
    main()
