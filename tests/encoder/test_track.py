"""Tracking by label propagation (encoder/tracking/): J and F by hand, propagation, the DAVIS layout, a run."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from encoder.tracking.config import TrackConfig, TrackData
from toto_robot.media.davis import palette, read_davis, read_mask, write_listing, write_mask
from encoder.tracking.metrics import boundary_f, boundary_map, region_j, score_video, summarize, tolerance_pixels
from encoder.tracking.propagate import PropagationSettings, grid_labels, masks_from_labels, propagate
from encoder.tracking.run import run_tracking
from tests.cli_errors import one_line_error
from tests.encoder.conftest import make_encoder_dir

ROOT = Path(__file__).resolve().parents[2]


def block(rows, cols, shape=(4, 4)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[rows, cols] = True
    return mask


def test_j_and_f_match_values_worked_out_by_hand():
    true = block(slice(None), slice(0, 2))  # left half of a 4x4 image: its boundary is column 1 (4 pixels)
    pred = true.copy()
    pred[2:, 2] = True  # rows 2-3 reach column 2: boundary (0,1) (1,1) (1,2) (2,2) (3,2), 5 pixels
    assert boundary_map(true).nonzero()[1].tolist() == [1, 1, 1, 1]
    assert sorted(zip(*boundary_map(pred).nonzero())) == [(0, 1), (1, 1), (1, 2), (2, 2), (3, 2)]
    assert region_j(pred, true) == pytest.approx(8 / 10)
    # no tolerance: 2 of 5 predicted boundary pixels and 2 of 4 true ones match: F = 2PR/(P+R) = 4/9
    assert boundary_f(pred, true, bound_th=0) == pytest.approx(4 / 9)
    assert boundary_f(pred, true, bound_th=1) == pytest.approx(1.0)  # every pixel within 1 px of the other boundary
    shifted = block(slice(None), slice(1, 3))  # boundary at columns 0 and 2, beside the true column 1: J = 4/12
    assert region_j(shifted, true) == pytest.approx(1 / 3)
    assert boundary_f(shifted, true, bound_th=0) == 0.0 and boundary_f(shifted, true, bound_th=1) == 1.0
    empty = np.zeros((4, 4), dtype=bool)
    assert region_j(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0
    assert region_j(empty, true) == 0.0 and boundary_f(empty, true) == 0.0 and boundary_f(true, empty) == 0.0
    assert tolerance_pixels((480, 854), 0.008) == 8 and tolerance_pixels((128, 128), 0.008) == 2
    assert tolerance_pixels((128, 128), 3) == 3


def test_video_scores_skip_the_given_first_and_the_last_frame():
    true = np.zeros((4, 4, 4), dtype=np.uint8)
    true[:, :, :2] = 1
    pred = true.copy()
    pred[0] = 0  # the first frame is given, never scored
    pred[3] = 0  # the last frame is left out as davis2017-evaluation does
    pred[2, :, :] = 0
    pred[2, :, :1] = 1  # frame 2: half the object, J = 1/2
    scores = score_video(pred, true, [1], bound_th=1)
    assert scores[1]["J"] == pytest.approx((1 + 0.5) / 2)
    summary = summarize({"a": scores, "b": {1: {"J": 0.25, "F": 0.75}}})
    assert summary["J"] == pytest.approx((0.75 + 0.25) / 2) and summary["JF"] == pytest.approx((summary["J"] + summary["F"]) / 2)


def test_a_mask_propagates_unchanged_through_copies_of_the_first_frame():
    grid, frames = 8, 12
    features = torch.randn(1, grid * grid, 64, generator=torch.Generator().manual_seed(0)).repeat(frames, 1, 1)  # copies
    mask = torch.zeros(64, 64, dtype=torch.uint8)
    mask[8:32, 16:40] = 1  # aligned to the 8 x 8 cells
    mask[40:56, 0:24] = 3
    first = grid_labels(mask, [1, 3], grid)
    assert first.shape == (64, 3) and torch.allclose(first.sum(1), torch.ones(64))
    labels = propagate(features, first, PropagationSettings(context_frames=4))
    # each patch finds itself (similarity 1) in every context frame; the other top-k picks weigh ~e^-(1-cos)/0.05
    assert torch.allclose(labels, first.expand(frames, -1, -1), atol=1e-3)
    masks = masks_from_labels(labels, [1, 3], (64, 64))
    given = masks_from_labels(first[None], [1, 3], (64, 64))[0]  # the first frame's mask through the feature grid
    assert masks.shape == (frames, 64, 64) and bool((masks == given).all())
    # which is the mask itself but for the 8 corners bilinear upsampling rounds off (a few pixels each)
    wrong = (given != mask).nonzero()
    corners = torch.tensor([(r, c) for r in (8, 32, 40, 56) for c in (16, 40, 0, 24)])
    assert len(wrong) <= 8 * 6 and torch.cdist(wrong.float(), corners.float()).min(1).values.max() < 4


def test_propagation_follows_a_moving_patch():
    """A distinctive patch moves one cell right each frame; its label moves with it."""
    grid, frames = 6, 5
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(grid * grid, 8, generator=generator) * 0.1
    target = torch.randn(8, generator=generator) * 3
    features = []
    for t in range(frames):
        f = base.clone()
        f[2 * grid + t] = target  # row 2, column t
        features.append(f)
    mask = torch.zeros(grid, grid, dtype=torch.uint8)
    mask[2, 0] = 1
    labels = propagate(torch.stack(features), grid_labels(mask, [1], grid), PropagationSettings(topk=1, radius=2))
    assert [(labels[t, :, 1] > 0.5).nonzero().flatten().tolist() for t in range(frames)] == [[2 * grid + t] for t in range(frames)]


def test_bad_propagation_settings_are_refused():
    with pytest.raises(ValueError, match="topk"):
        PropagationSettings(topk=0)
    with pytest.raises(ValueError, match="keep_first"):
        PropagationSettings(context_frames=0, keep_first=False)


def write_video(root: Path, name: str, frames: np.ndarray, masks: np.ndarray, resolution: str = "480p") -> None:
    from PIL import Image

    for t, (frame, mask) in enumerate(zip(frames, masks)):
        path = root / "JPEGImages" / resolution / name / f"{t:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(path, quality=95)
        write_mask(root / "Annotations" / resolution / name / f"{t:05d}.png", mask)


def noise_frames(count: int, size: int, seed: int = 0, still: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return np.stack([frame if still else rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)])


def test_davis_layout_reads_palette_masks_and_counts_unknown_indices(tmp_path):
    masks = np.zeros((3, 16, 24), dtype=np.uint8)
    masks[:, 2:6, 3:9] = 1
    masks[:, 8:12, 10:20] = 2
    masks[2, 0, :5] = 255  # an index the first frame does not hold: counted, scored as background
    write_video(tmp_path, "cows", noise_frames(3, 24)[:, :16], masks)
    write_video(tmp_path, "dogs", noise_frames(2, 24)[:, :16], masks[:2])
    write_listing(tmp_path, ["cows"])
    assert tuple(palette()[1]) == (128, 0, 0) and tuple(palette()[2]) == (0, 128, 0)
    assert read_mask(tmp_path / "Annotations/480p/cows/00001.png").tolist() == masks[1].tolist()

    (video,) = read_davis(tmp_path)  # the ImageSets list: cows only
    loaded = video.load_masks()
    assert video.name == "cows" and video.objects == [1, 2] and len(video.frames) == 3
    assert video.unknown_pixels == 5 and video.unknown_frames == 1 and loaded[2, 0, :5].tolist() == [0] * 5
    assert video.load_frames().shape == (3, 16, 24, 3)
    assert [v.name for v in read_davis(tmp_path, videos=["dogs", "cows"])] == ["dogs", "cows"]

    (tmp_path / "Annotations/480p/dogs/00001.png").unlink()
    with pytest.raises(ValueError, match="video 'dogs': 2 frames but 1 annotations"):
        read_davis(tmp_path, videos=["dogs"])
    for path in (tmp_path / "Annotations/480p/dogs").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match="video 'dogs': no annotations"):
        read_davis(tmp_path, videos=["dogs"])
    with pytest.raises(FileNotFoundError, match="DAVIS-2017 root"):
        read_davis(tmp_path / "nowhere")


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory) -> Path:
    """A DAVIS folder: "still" (six copies of one noise frame) and "noisy" (six different ones), 2 objects."""
    data = tmp_path_factory.mktemp("davis")
    masks = np.zeros((6, 96, 128), dtype=np.uint8)
    masks[:, 16:48, 16:64] = 1
    masks[:, 60:88, 72:120] = 2
    write_video(data, "still", noise_frames(6, 128, still=True)[:, :96], masks)
    write_video(data, "noisy", noise_frames(6, 128, seed=1)[:, :96], masks)
    return data


def test_a_still_video_tracks_perfectly_on_pixel_patches_and_the_run_writes_its_outputs(two_videos, tmp_path):
    cfg = TrackConfig(encoders=["pixels"], progress=False, overlays=1, out=str(tmp_path),
                      data=TrackData(root=str(two_videos), videos=["still", "noisy"]))
    r = run_tracking(cfg)["encoders"]["pixels"]
    still = r["layers"]["1"]["videos"]["still"]  # labels come back unchanged; only the 16 x 16 grid's blur is lost
    assert all(still[k]["J"] > 0.95 and still[k]["F"] > 0.95 for k in ("1", "2"))
    noisy = r["layers"]["1"]["videos"]["noisy"]  # unrelated frames: labels land anywhere
    assert all(noisy[k]["J"] < 0.9 for k in ("1", "2"))
    assert r["best_layer"] == 1 and r["layers"]["1"]["objects"] == 4
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["copy_first_frame"]["J"] > 0.95  # nothing moves in either video: repeating the first mask is right
    assert saved["encoders"]["pixels"]["best"] == pytest.approx(r["best"])
    assert (tmp_path / "jf_vs_layer.png").read_bytes()[:4] == b"\x89PNG"
    (video,) = (tmp_path / "overlays").iterdir()
    assert video.name.endswith("_still.mp4") and video.stat().st_size > 1000


def test_a_frozen_toto_is_tracked_at_every_layer(two_videos, tmp_path):
    encoder = make_encoder_dir(tmp_path / "encoder", resolution=64, n_layers=3)
    cfg = TrackConfig(encoders=[str(encoder)], dtype="fp32", device="cpu", progress=False, overlays=0, out=str(tmp_path / "out"),
                      data=TrackData(root=str(two_videos), videos=["still"], max_frames=4))
    r = run_tracking(cfg)["encoders"][str(encoder)]
    assert sorted(r["layers"], key=int) == ["1", "2", "3"] and (r["n_layers"], r["grid"], r["kind"]) == (3, 8, "toto")
    assert r["best"]["JF"] == max(layer["JF"] for layer in r["layers"].values()) and 0 < r["best"]["JF"] <= 1
    assert r["best_depth"] == pytest.approx(r["best_layer"] / 3)


def test_embedded_set_is_sim_episodes_with_cube_and_finger_masks(tmp_path):
    from sim.segmentation import write_mask_set

    made = write_mask_set(tmp_path, tasks=["kuka_pick"], frames=6, cameras=("wrist",), progress=False)
    (video,) = read_davis(made["root"], resolution=made["resolution"])
    masks = video.load_masks()
    assert video.name == "kuka_pick_wrist_05000" and masks.shape == (6, 128, 128)
    assert video.objects == [1, 2]  # the cube and the Allegro fingers, both in view from the wrist
    assert all(0 < (masks == k).mean() < 0.5 for k in (1, 2))
    again = write_mask_set(tmp_path, tasks=["kuka_pick"], frames=6, cameras=("wrist",), progress=False)  # kept
    first = tmp_path / "JPEGImages/128p/kuka_pick_wrist_05000/00000.png"  # lossless frames: what the renderer gave
    assert again == made and first.is_file() and np.asarray(Image.open(first)).shape == (128, 128, 3)
    assert np.array_equal(video.load_frames()[0], np.asarray(Image.open(first)))
    with pytest.raises(ValueError, match="other settings"):
        write_mask_set(tmp_path, tasks=["kuka_pick"], frames=7, cameras=("wrist",), progress=False)


def test_cli_errors_are_one_line(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "encoder.track", *args, f"out={tmp_path}"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    assert "encoder /nowhere not found" in one_line_error(cli("encoders=[/nowhere]"))
    encoder = make_encoder_dir(tmp_path / "encoder", resolution=64)
    assert "DAVIS-2017 root" in one_line_error(cli(f"encoders=[{encoder}]", f"data.root={tmp_path / 'none'}"))
    assert "topk" in one_line_error(cli(f"encoders=[{encoder}]", "propagation.topk=0"))
    typo = cli("propagation.topkk=3")  # hydra's own message, before the job runs
    assert typo.returncode != 0 and "Key 'topkk' not in 'PropagationSettings'" in typo.stderr and "Traceback" not in typo.stderr
