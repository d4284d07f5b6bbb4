"""Recorded demos (sim/record.py, robomimic schema) as policy rows, BC from them, and robomimic reading them."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from policies import DaggerConfig, StateFeatures, TotoFeatures, train_dagger
from policies.demos import demo_buffer


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    from sim.record import RecordConfig, record

    out = tmp_path_factory.mktemp("record")
    record(RecordConfig(task="franka_pick", episodes=3, out=str(out), image_size=32, cameras=["wrist"], video=False,
                        progress=False))
    return out / "franka_pick" / "demos.hdf5"


def test_rows_are_the_demos_samples(demo_file, tmp_path):
    from tests.encoder.conftest import make_encoder_dir
    from toto_robot import load_encoder

    buffer, env_args = demo_buffer(demo_file, StateFeatures())
    rows = buffer.arrays()
    with h5py.File(demo_file) as f:
        demos = [f["data"][f"demo_{i}"] for i in range(3)]
        np.testing.assert_array_equal(rows["actions"], np.concatenate([d["actions"][()] for d in demos]))
        np.testing.assert_array_equal(rows["features"], np.concatenate([d["states"][()] for d in demos]))
        np.testing.assert_array_equal(rows["proprio"], np.concatenate([d["obs/proprio"][()] for d in demos]))
    assert env_args["env_name"] == "toto_robot/FrankaPick-v0" and (rows["rounds"] == 0).all()
    encoder = load_encoder(make_encoder_dir(tmp_path / "enc"), dtype="fp32")  # 32 px, the recording's size
    pixels = demo_buffer(demo_file, TotoFeatures(encoder))[0].arrays()["features"]
    assert pixels.shape == (len(rows["actions"]), encoder.dim) and np.isfinite(pixels).all()


def test_bc_from_a_file_needs_no_expert_rollouts(demo_file):
    import sim

    buffer, _ = demo_buffer(demo_file, StateFeatures())
    env = sim.make_env("franka_pick", obs_mode="proprio+state", image_size=32)
    def no_expert(state):
        raise AssertionError("BC from demos must not call the expert")

    actor, stats = train_dagger(env, StateFeatures(), no_expert, DaggerConfig(algo="bc", epochs=2), demos=buffer)
    env.close()
    assert stats[0]["env_steps"] == 0 and stats[0]["buffer"] == len(buffer) and np.isfinite(stats[0]["train_loss"])


def test_wrong_schema_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.hdf5"
    with h5py.File(bad, "w") as f:
        f.create_group("data").attrs["total"] = 0
    with pytest.raises(ValueError, match="missing attribute data.attrs\\['env_args'\\]"):
        demo_buffer(bad, StateFeatures())


def test_robomimic_reads_our_files(demo_file):
    """robomimic's own SequenceDataset loads the recorded file (installed --no-deps by scripts/install.sh:
    its torchvision dependency would resolve to 0.28.0, which fails to load next to torch 2.13.0)."""
    pytest.importorskip("robomimic.utils.dataset", reason="robomimic not installed (scripts/install.sh installs it)")
    import robomimic.utils.obs_utils as obs_utils
    from robomimic.utils.dataset import SequenceDataset

    obs_utils.initialize_obs_modality_mapping_from_dict({"low_dim": ["proprio"], "rgb": ["pixels"]})
    dataset = SequenceDataset(hdf5_path=str(demo_file), obs_keys=("pixels", "proprio"), dataset_keys=("actions",),
                              load_next_obs=False, hdf5_use_swmr=False)
    with h5py.File(demo_file) as f:
        total = int(f["data"].attrs["total"])
        first = f["data/demo_0"]
        actions, proprio, pixels = first["actions"][()], first["obs/proprio"][()], first["obs/pixels"][()]
    assert len(dataset) == total
    sample = dataset[1]
    np.testing.assert_allclose(sample["actions"][0], actions[1])
    np.testing.assert_allclose(sample["obs"]["proprio"][0], proprio[1])
    assert np.asarray(sample["obs"]["pixels"]).reshape(-1).size == pixels[1].size
