"""policies/policy.py: the one policy object (select_action, save_pretrained/from_pretrained, the
standardizations and bounds it carries) and policies/convert.py for the two earlier checkpoint kinds."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from policies import Actor, EncoderSpec, FeatureProvider, Policy, PolicyConfig
from policies.convert import main as convert_main
from toto_robot.checkpoint import CheckpointError, save_weights


class HalfFeatures(FeatureProvider):
    """obs["pixels"] (B, 4) -> (B, 4) features (pixels / 2): a stand-in for the frozen encoder."""

    key, dim = "pixels", 4

    def __call__(self, obs):
        return self._read(obs).astype(np.float32) / 2


def real_like_config(**changes) -> PolicyConfig:
    base = dict(encoder=EncoderSpec(kind="random"), feat_dim=4, proprio_dim=3, action_dim=2, bound="clip",
                normalize=("features", "proprio", "actions"), action={"low": [None, 0.0], "high": [None, 1.0]})
    return PolicyConfig(**{**base, **changes})


def test_standardizations_and_bounds_round_trip_through_save_and_load(tmp_path):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    policy = Policy(real_like_config(), features=HalfFeatures())
    f, p = rng.normal(3, 2, (50, 4)).astype(np.float32), rng.normal(0, 0.01, (50, 3)).astype(np.float32)
    a = np.c_[rng.normal(0, 0.01, 50), rng.integers(0, 2, 50)].astype(np.float32)
    policy.fit_stats(f, p, a)
    target = policy.target(torch.from_numpy(a))
    assert torch.allclose(target.mean(0), torch.zeros(2), atol=1e-5) and torch.allclose(target.std(0), torch.ones(2), atol=1e-4)
    assert policy.proprio_std.max() < 0.05  # joint-scale proprio gets joint-scale statistics

    obs = {"pixels": rng.normal(size=(5, 4)).astype(np.float32), "proprio": p[:5]}
    action = policy.select_action(obs)
    with torch.no_grad():
        raw = policy.actor(torch.from_numpy(obs["pixels"] / 2), (torch.from_numpy(p[:5]) - policy.proprio_mean) / policy.proprio_std)
    expected = raw.numpy() * policy.action_std.numpy() + policy.action_mean.numpy()
    np.testing.assert_allclose(action[:, 0], expected[:, 0], rtol=1e-5, atol=1e-6)  # unbounded joint delta
    np.testing.assert_allclose(action[:, 1], np.clip(expected[:, 1], 0, 1), rtol=1e-5, atol=1e-6)  # gripper in [0, 1]
    single = policy.select_action({k: v[0] for k, v in obs.items()})
    assert single.shape == (2,) and np.allclose(single, action[0], atol=1e-6)

    policy.save_pretrained(tmp_path, stats=[{"round": 0}])
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["kind"] == "toto_policy" and meta["stats"] == [{"round": 0}] and meta["config"]["encoder"]["kind"] == "random"
    loaded = Policy.from_pretrained(tmp_path, features=HalfFeatures(), device="cpu", dtype="fp32")
    assert loaded.config.encoder.device == "cpu" and loaded.config.encoder.dtype == "fp32"  # this machine's, not the saved
    np.testing.assert_array_equal(loaded.select_action(obs), action)


def test_missing_or_earlier_checkpoints_are_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="no policy at .*train_policy.py or python real/train_bc.py"):
        Policy.from_pretrained(tmp_path)
    save_weights(tmp_path, "actor", Actor(4, 0, 2).state_dict(), kind="dagger_actor", config=Actor(4, 0, 2).config)
    with pytest.raises(CheckpointError, match=f"earlier version: convert it with python -m policies.convert {tmp_path}") as error:
        Policy.from_pretrained(tmp_path)
    assert "\n" not in str(error.value)


def test_proprio_is_required_when_the_policy_reads_it():
    policy = Policy(real_like_config(), features=HalfFeatures())
    with pytest.raises(ValueError, match="reads proprioception"):
        policy.select_action({"pixels": np.zeros(4, np.float32)})


def test_a_sim_run_of_the_earlier_kind_converts_and_acts_as_before(tmp_path, capsys):
    torch.manual_seed(1)
    actor = Actor(4, 0, 3)  # the state actor, as sim runs with encoder=state saved it
    actor.set_feature_stats(np.random.default_rng(1).normal(size=(20, 4)))
    save_weights(tmp_path, "actor", actor.state_dict(), kind="dagger_actor", config=actor.config, stats=[{"round": 0}],
                 dagger={"rounds": 1})
    (tmp_path / "policy.json").write_text(json.dumps({"encoder": {"name": "state", "path": "x", "layer": "mid", "pool": "grid4",
                                                                  "dtype": "auto", "device": "auto", "batch_size": 64, "seed": 0}}))
    assert convert_main([str(tmp_path)]) == 0 and "model.json" in capsys.readouterr().out  # no encoder to find: state
    policy = Policy.from_pretrained(tmp_path)
    assert policy.config.encoder.kind == "state" and policy.meta["converted_from"] == "dagger_actor"
    assert policy.meta["stats"] == [{"round": 0}] and policy.meta["dagger"] == {"rounds": 1}
    state = np.random.default_rng(2).normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_array_equal(policy.select_action({"state": state}), actor.act(state))
    assert convert_main([str(tmp_path)]) == 2  # already converted: one line, nothing rewritten
    assert capsys.readouterr().err.count("\n") == 1
    toto = tmp_path / "toto"  # a pixel policy whose encoder has moved: one line asking where it is now
    save_weights(toto, "actor", actor.state_dict(), kind="dagger_actor", config=actor.config, stats=[])
    (toto / "policy.json").write_text(json.dumps({"encoder": {"name": "toto", "path": str(tmp_path / "gone")}}))
    assert convert_main([str(toto)]) == 2 and "--encoder-path" in capsys.readouterr().err
    assert not (toto / "model.json").exists()


def test_a_real_bc_run_of_the_earlier_kind_converts_and_acts_as_before(tmp_path):
    torch.manual_seed(2)
    actor = Actor(8, 8, 8, bound="clip")
    rng = np.random.default_rng(3)
    norm = {"proprio_mean": rng.normal(size=8).tolist(), "proprio_std": rng.uniform(0.5, 2, 8).tolist(),
            "action_mean": rng.normal(size=8).tolist(), "action_std": rng.uniform(0.01, 1, 8).tolist()}
    layout = {"proprio": [f"joint_{i + 1}" for i in range(7)] + ["gripper"], "gripper_obs": "width_m",
              "gripper_closed_below_m": 0.07, "action": [f"delta_joint_{i + 1}" for i in range(7)] + ["gripper_close"],
              "action_mode": "joint_delta", "control_hz": 10.0}
    encoder = {"path": str(tmp_path / "moved"), "layer": 2, "pool": "avg", "dtype": None, "device": "auto", "batch_size": 64,
               "resolution": 32, "feature_dim": 8}
    save_weights(tmp_path, "actor", actor.state_dict(), kind="real_bc_policy", config=actor.config, encoder=encoder,
                 preprocessing={"name": "rpt_lower_centre_crop"}, layout=layout, normalization=norm, stats=[])
    assert convert_main([str(tmp_path), "--encoder-path", str(tmp_path / "encoder")]) == 0
    policy = Policy.from_pretrained(tmp_path, features=HalfFeatures())
    assert policy.config.encoder.path == str(tmp_path / "encoder") and policy.config.encoder.layer == 2
    assert policy.config.observation["gripper_obs"] == "width_m" and policy.config.action["convention"] == "joint_delta"
    f, p = rng.normal(size=(3, 8)).astype(np.float32), rng.normal(size=(3, 8)).astype(np.float32)
    n = {k: np.asarray(v, np.float32) for k, v in norm.items()}
    with torch.no_grad():  # the earlier BCPolicy.act, written out
        old = actor(torch.from_numpy(f), torch.from_numpy((p - n["proprio_mean"]) / n["proprio_std"])).numpy()
    old = old * n["action_std"] + n["action_mean"]
    old[:, 7] = np.clip(old[:, 7], 0, 1)
    np.testing.assert_allclose(policy.act(f, p), old, rtol=1e-5, atol=1e-6)


def test_proprio_of_the_wrong_size_or_not_finite_is_one_line():
    policy = Policy(real_like_config(), features=HalfFeatures())
    pixels = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"proprio must be \(3,\) or \(batch, 3\), got shape \(5,\)"):
        policy.select_action({"pixels": pixels, "proprio": np.zeros(5, np.float32)})
    with pytest.raises(ValueError, match="NaN or inf"):
        policy.select_action({"pixels": pixels, "proprio": np.array([0.0, np.nan, 0.0], np.float32)})
