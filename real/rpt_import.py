"""Import demonstrations in the public RPT convention into a real-robot demo file (robomimic schema).

    python -m real.rpt_import <episodes dir or file> <out.hdf5> [--resolution 128] [--control-hz 10] [--stride 1]

RPT's published copy is RLDS/TFRecord (berkeley_rpt_converted_externally_to_rlds), which cannot be
read without tensorflow, and tensorflow is not installed here. So the input is what one gets by
exporting that dataset (or one's own RPT-style recordings) episode by episode: a directory of
`.npz` or `.hdf5`/`.h5` files, one episode each, with per-step arrays under these keys (the first
name of each list is the RLDS feature name; the others are accepted aliases, nested HDF5 paths too):

    hand camera     (T, 480, 640, 3) uint8   hand_image | observation/hand_image | images | image | rgb | pixels ...
    joint positions (T, 7) float             joint_pos | observation/joint_pos | joint_positions | joints | qpos ...
    gripper         (T,) or (T, 1), optional gripper | observation/gripper | gripper_state   (1 closed, 0 open)
    actions         (T, 8), optional         action | actions: 7 joint deltas (rad) + binary gripper

`--stride k` keeps every k-th step, so demos recorded faster than the policy acts (e.g. 30 Hz for a
10 Hz policy: stride 3) get actions of the policy's step: k consecutive joint deltas summed, the
gripper command of the last; an incomplete last block is dropped, and control_hz becomes control_hz / k.
Without actions they are derived (real.demo_layout.deltas_from_joints: q[t+1] - q[t], gripper
target = next gripper state), which drops each episode's last step. Frames go through
real.preprocess (lower-centre 448 crop, resize). An episode that is unreadable, misses a key, has
wrong shapes or non-finite values is skipped and counted with its reason; the import goes on. The
output appears atomically (per-episode parts, merged by toto_robot.demos.merge_demo_files).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from real.demo_layout import ACTION_DIM, GRIPPER_CLOSED_BELOW_M, GRIPPER_OBS, NUM_JOINTS, RealLayout, deltas_from_joints
from real.preprocess import preprocess_frames

IMAGE_KEYS = ("hand_image", "observation/hand_image", "steps/observation/hand_image", "obs/hand_image", "hand_images",
              "images", "image", "rgb", "obs/pixels", "pixels")
JOINT_KEYS = ("joint_pos", "observation/joint_pos", "steps/observation/joint_pos", "obs/joint_pos", "joint_positions",
              "obs/joint_positions", "joints", "qpos")
GRIPPER_KEYS = ("gripper", "observation/gripper", "steps/observation/gripper", "obs/gripper", "gripper_state")
ACTION_KEYS = ("action", "steps/action", "actions")
SUFFIXES = (".npz", ".hdf5", ".h5")


class BadEpisode(Exception):
    """An episode file that cannot be imported; the message is the reason reported."""


def episode_files(src: Path) -> list[Path]:
    """The episode files of `src` (a file, or a directory's files with a known suffix, sorted by name)."""
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise ValueError(f"{src}: no such file or directory of RPT episodes")
    files = sorted(p for p in src.iterdir() if p.suffix in SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"{src} holds no episode files ({', '.join(SUFFIXES)})")
    return files


def read_keys(path: Path) -> dict[str, np.ndarray]:
    """The arrays under the accepted key names (only those), read from one .npz or HDF5 episode."""
    wanted = (*IMAGE_KEYS, *JOINT_KEYS, *GRIPPER_KEYS, *ACTION_KEYS)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in wanted if k in data.files}
        import h5py

        with h5py.File(path, "r") as f:
            return {k: f[k][()] for k in wanted if k in f and isinstance(f[k], h5py.Dataset)}
    except Exception as error:  # zip/HDF5 libraries raise many types for a truncated or foreign file
        raise BadEpisode(f"unreadable ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from None


def _first(arrays: dict, keys: tuple[str, ...], what: str, required: bool = True):
    for key in keys:
        if key in arrays:
            return key, arrays[key]
    if required:
        raise BadEpisode(f"no {what} (looked for {', '.join(keys[:5])}, ...)")
    return None, None


def _numeric(key: str, value: np.ndarray, shape_ok: bool, expected: str) -> np.ndarray:
    if not shape_ok:
        raise BadEpisode(f"{key} has shape {value.shape}, expected {expected}")
    if value.dtype.kind not in "biuf":
        raise BadEpisode(f"{key} has dtype {value.dtype}, expected numbers")
    value = value.astype(np.float32)
    if not np.isfinite(value).all():
        raise BadEpisode(f"{key} holds NaN or inf")
    return value


def _strided(images, joints, proprio, gripper, actions, k: int):
    """Every k-th step; given actions summed over each block of k (gripper: the block's last command)."""
    blocks = len(images) // k if actions is not None else (len(images) - 1) // k + 1
    if blocks < (1 if actions is not None else 2):
        raise BadEpisode(f"{len(images)} steps: too short for --stride {k}")
    if actions is not None:
        grouped = actions[: blocks * k].reshape(blocks, k, ACTION_DIM)
        actions = np.concatenate([grouped[:, :, :NUM_JOINTS].sum(axis=1), grouped[:, -1, NUM_JOINTS:]], axis=1)
    keep = np.arange(blocks) * k
    return images[keep], joints[keep], proprio[keep], None if gripper is None else gripper[keep], actions, blocks


def load_episode(path: Path, layout: RealLayout, stride: int = 1):
    """One episode as a toto_robot.demos.Demo (frames preprocessed, every `stride`-th step); BadEpisode says why not."""
    from toto_robot.demos import Demo  # (lazy: h5py)

    arrays = read_keys(path)
    image_key, images = _first(arrays, IMAGE_KEYS, "hand camera images")
    joint_key, joints = _first(arrays, JOINT_KEYS, "joint positions")
    gripper_key, gripper = _first(arrays, GRIPPER_KEYS, "gripper", required=False)
    action_key, actions = _first(arrays, ACTION_KEYS, "actions", required=False)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise BadEpisode(f"{image_key} is {images.dtype} {images.shape}, expected uint8 (T, 480, 640, 3)")
    T = len(images)
    joints = _numeric(joint_key, joints, joints.shape == (T, NUM_JOINTS), f"(T={T}, {NUM_JOINTS})")
    if gripper is not None:
        gripper = _numeric(gripper_key, gripper, gripper.shape in ((T,), (T, 1)), f"(T={T},) or (T, 1)").reshape(T, 1)
    proprio = joints if gripper is None else np.concatenate([joints, gripper], axis=1)
    if actions is not None:
        actions = _numeric(action_key, actions, actions.shape == (T, ACTION_DIM), f"(T={T}, {ACTION_DIM})")
    elif T < 2:
        raise BadEpisode("one step and no actions: nothing to derive joint deltas from")
    if stride > 1:
        images, joints, proprio, gripper, actions, T = _strided(images, joints, proprio, gripper, actions, stride)
    pixels = preprocess_frames(images, layout.resolution)
    if action_key is None:
        closed = np.zeros(T - 1) if gripper is None else gripper[1:, 0]
        if gripper is not None and layout.gripper_obs == "width_m":
            closed = (closed < GRIPPER_CLOSED_BELOW_M).astype(np.float32)
        actions, pixels, proprio, T = deltas_from_joints(joints, closed), pixels[:-1], proprio[:-1], T - 1
    rewards, dones = np.zeros(T, np.float32), np.zeros(T, bool)
    rewards[-1], dones[-1] = 1.0, True  # RLDS convention for demos: reward 1 on the final step
    return Demo(actions=actions, rewards=rewards, dones=dones, states=np.zeros((T, 0), np.float32),
                obs={"pixels": pixels, "proprio": proprio}, success=True), action_key is None


def import_rpt(src, out, resolution: int = 128, gripper_obs: str = "closed_binary", control_hz: float | None = None,
               progress: bool = False, stride: int = 1) -> dict:
    """Import every episode of `src` into `out`; returns {out, episodes, samples, derived_actions, skipped: {file: reason}}.

    ValueError (one line) if `src` is missing or no episode could be imported (`out` is then not written).
    """
    from tqdm import tqdm

    from toto_robot.demos import merge_demo_files, write_demo_file  # (lazy: h5py)

    src, out = Path(src).expanduser(), Path(out).expanduser()
    files = episode_files(src)
    if int(resolution) < 8:
        raise ValueError(f"resolution={resolution}: use the encoder's frame size (e.g. 128)")
    if int(stride) < 1:
        raise ValueError(f"stride={stride}: keep every k-th step with k >= 1")
    rate = None if control_hz is None else control_hz / int(stride)
    layout = RealLayout(resolution=int(resolution), source="rpt", gripper_obs=gripper_obs, control_hz=rate)
    skipped, parts, samples, derived, proprio_width = {}, [], 0, 0, 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.parts.") as tmp:
        for path in tqdm(files, desc="import", unit="episode", disable=not progress):
            try:
                demo, was_derived = load_episode(path, layout, int(stride))
            except BadEpisode as reason:
                skipped[path.name] = str(reason)
                continue
            width = demo.obs["proprio"].shape[1]
            if parts and width != proprio_width:
                gripper = "present" if width > NUM_JOINTS else "missing"
                skipped[path.name] = f"proprio of {width} values (gripper key {gripper}), earlier episodes have {proprio_width}"
                continue
            proprio_width = width
            part = Path(tmp) / f"demo_{len(parts)}.hdf5"
            write_demo_file(part, len(parts), demo, layout.env_args())
            parts.append(part)
            samples, derived = samples + demo.num_samples, derived + was_derived
        if not parts:
            reasons = "; ".join(f"{name}: {why}" for name, why in list(skipped.items())[:3])
            raise ValueError(f"no episode of {src} could be imported ({len(skipped)} skipped: {reasons})")
        merge_demo_files(parts, out)
    return {"out": str(out), "episodes": len(parts), "samples": samples, "derived_actions": derived, "skipped": skipped}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m real.rpt_import", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="a directory of per-episode .npz/.hdf5 files (or one such file)")
    parser.add_argument("out", help="the robomimic-schema HDF5 to write")
    parser.add_argument("--resolution", type=int, default=128, help="frame size after crop and resize: the encoder's (128)")
    parser.add_argument("--gripper-obs", choices=GRIPPER_OBS, default="closed_binary", help="unit of the gripper key")
    parser.add_argument("--control-hz", type=float, default=None, help="rate of the recorded steps, if known")
    parser.add_argument("--stride", type=int, default=1, help="keep every k-th step (recorded at k x the policy's rate)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        summary = import_rpt(args.src, args.out, args.resolution, args.gripper_obs, args.control_hz, not args.no_progress,
                             args.stride)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"imported {summary['episodes']} episodes ({summary['samples']} samples, actions derived in "
          f"{summary['derived_actions']}) -> {summary['out']}; skipped {len(summary['skipped'])}")
    for name, reason in summary["skipped"].items():
        print(f"  skipped {name}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
