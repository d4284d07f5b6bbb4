"""Token and feature stability: the measures themselves, the patch-local FSQ encoder, lossless storage,
the FSQ-aware embedding start."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from encoder.code_embedding import fsq_code_embedding
from encoder.feature_stability import code_neighbour_cosine, fsq_neighbours, position_readout, self_match, video_features
from encoder.tokenizers import stability
from encoder.tokenizers.fsq import FSQ, FSQConfig, FSQTokenizer
from encoder.tracking.run import PixelPatches


def _scaled(tokenizer: FSQTokenizer) -> FSQTokenizer:
    """Random weights scaled up so codes vary from patch to patch (an untrained FSQ maps most patches to one code)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in tokenizer.encoder.parameters():
            p.mul_(4.0)
    return tokenizer.eval()


def _frames(n=2, seed=0):
    return torch.randint(0, 256, (n, 64, 64, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.mark.parametrize("local", [True, False])
def test_changing_one_patch_changes_other_codes_only_with_context(local):
    tokenizer = _scaled(FSQTokenizer(FSQConfig(local=local, channels=(16, 32, 32))))
    x = _frames()
    y = x.clone()
    y[:, 24:32, 24:32] = 255 - y[:, 24:32, 24:32]  # patch (3, 3) of the 8 x 8 grid
    before, after = tokenizer.encode(x), tokenizer.encode(y)
    changed = before != after
    changed[:, 3, 3] = False
    if local:
        assert not changed.any()  # a code sees its own 8 x 8 pixels only
    else:
        assert changed.any()  # the 3x3-conv encoder's codes see their neighbours


def test_still_patches_and_context():
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    frames[1, 0:2, 0:2] = 9  # patch (0, 0) changes between frames 0-1 and 1-2
    still = stability.still_patches(frames, 8)
    assert still.shape == (2, 8, 8) and not still[:, 0, 0].any() and still[:, 1:, 1:].all()
    context = stability.still_context(still, 7)
    assert not context[:, 3, 3].any() and context[:, 4, 4].all()  # within 3 patches of the moving one


def test_measure_counts_flips_of_still_patches():
    class Hashing:
        """Codes from a patch's pixels plus the frame index: every still patch flips."""
        downsample, kind = 8, "fake"

        def encode(self, frames):
            base = frames.reshape(len(frames), 8, 8, 8, 8, 3).float().mean((2, 4, 5)).long()
            return base + torch.arange(len(frames))[:, None, None] * 1000 * (self.flip)

    frames = np.repeat(np.random.default_rng(0).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8), 6, 0)
    frames[3:, :8, :8] = 0  # one patch moves once
    steady, flippy = Hashing(), Hashing()
    steady.flip, flippy.flip = 0, 1
    calm = stability.measure(steady, {"v": frames}, {"v": frames})
    assert calm["static_flip"] == 0 and calm["stored_agreement"] == 1.0 and 0 < calm["flip_stride1"] < 0.01
    wild = stability.measure(flippy, {"v": frames})
    assert wild["static_flip"] == 1.0 and wild["stored_agreement"] is None


def test_psnr_is_the_known_value_and_the_tokenizer_stage_reports_the_same():
    from pretrain.train_tokenizer import evaluate

    frames = _frames(3).numpy()
    exact = np.full((3, 64, 64, 3), 100, np.uint8)
    assert stability.frame_psnr(torch.from_numpy(exact), torch.from_numpy(exact + 1)).tolist() == pytest.approx(
        [10 * np.log10(255**2)] * 3)  # an error of 1 everywhere: MSE 1
    tokenizer = _scaled(FSQTokenizer(FSQConfig(channels=(16, 32, 32))))
    with torch.no_grad():
        metrics, _ = evaluate(tokenizer, frames, batch_size=2)
        assert stability.psnr(tokenizer, frames, batch=2) == pytest.approx(metrics["psnr_db"], abs=0.01)


def test_lossless_mp4_keeps_every_value_and_yuv420p_does_not(tmp_path):
    from toto_robot.media.video import read_frames
    from toto_robot.video_writer import write_mp4

    frames = [np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(5)]
    write_mp4(tmp_path / "a.mp4", frames, fps=10, lossless=True)
    write_mp4(tmp_path / "b.mp4", frames, fps=10)
    assert np.array_equal(read_frames(tmp_path / "a.mp4"), np.stack(frames))
    assert not np.array_equal(read_frames(tmp_path / "b.mp4"), np.stack(frames))


def test_fsq_embedding_start_puts_one_level_neighbours_close():
    levels = (7, 5, 5, 5, 5)
    values = FSQ(levels).indices_to_codes(torch.arange(int(np.prod(levels))))
    rows = fsq_code_embedding(values, 64, torch.Generator().manual_seed(0))
    assert rows.std().item() == pytest.approx(0.02, rel=0.1)
    table = torch.cat([torch.zeros(4, 64), rows])  # four special ids before the codes, as in encoder/tokens.py
    structured = code_neighbour_cosine(table, levels, offset=4)
    plain = code_neighbour_cosine(torch.randn(len(table), 64) * 0.02, levels, offset=4)
    assert structured["one_level"] > 0.6 and abs(structured["random"]) < 0.2
    assert abs(plain["one_level"]) < 0.1


def test_fsq_neighbours_differ_by_one_level_in_one_digit():
    levels = (8, 5, 5)
    a, b = fsq_neighbours(levels, 500, torch.Generator().manual_seed(0))
    q = FSQ(levels)
    da = (a[:, None] // q.basis) % q.levels
    db = (b[:, None] // q.basis) % q.levels
    assert ((da - db).abs().sum(-1) == 1).all() and (db < q.levels).all() and (db >= 0).all()


def test_self_match_is_one_for_a_still_video_and_lower_when_it_shifts():
    rng = np.random.default_rng(0)
    still = np.repeat(rng.integers(0, 256, (1, 128, 128, 3), dtype=np.uint8), 3, 0)
    assert self_match(video_features(PixelPatches(), {"v": still}, [1])) == {1: 1.0}
    moving = np.stack([np.roll(still[0], 8 * t, axis=1) for t in range(3)])
    assert self_match(video_features(PixelPatches(), {"v": moving}, [1]))[1] < 0.1


def test_position_readout_finds_a_place_written_in_the_features_and_not_one_that_is_absent():
    class Features:
        """Token features of the frames' 16 x 16 pixel patches, with or without the patch's row and column (one-hot)."""
        def __init__(self, with_place):
            self.pixels, self.with_place = PixelPatches(128), with_place

        def token_features(self, frames, layers):
            h = self.pixels.token_features(frames, [1])[1][..., :16].float()
            if self.with_place:
                index = torch.arange(h.shape[1])
                place = torch.cat([F.one_hot(index // 16, 16), F.one_hot(index % 16, 16)], -1).float()
                h = torch.cat([h, place.expand(len(h), -1, -1)], -1)
            return {n: h for n in layers}

    rng = np.random.default_rng(0)
    videos = {f"v{i}": rng.integers(0, 256, (6, 128, 128, 3), dtype=np.uint8) for i in range(2)}
    placed = position_readout(video_features(Features(True), videos, [1]))[1]
    blind = position_readout(video_features(Features(False), videos, [1]))[1]
    assert placed > 0.5 and blind < 0.02  # chance: 1 / 256
