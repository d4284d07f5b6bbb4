"""policies/ppo.py: PPO on frozen features through stable-baselines3 (MVP's actor and hyper-parameters)."""
from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from policies import Actor, FeatureProvider, Policy, StateFeatures
from policies.ppo import FeatureObservation, PPOConfig, make_ppo, make_vec_env


class CountingFeatures(FeatureProvider):
    """obs["pixels"] (B, 4) -> (B, 3) features; counts calls (features must be computed once per step)."""

    key, dim = "pixels", 3

    def __init__(self):
        self.calls = 0

    def __call__(self, obs):
        self.calls += 1
        return self._read(obs)[:, :3].astype(np.float32) * 2.0


class DictEnv(gym.Env):
    """A tiny Dict-observation env (pixels, proprio) with a 2-d action and is_success in info."""

    observation_space = gym.spaces.Dict({"pixels": gym.spaces.Box(-1, 1, (4,), np.float32),
                                         "proprio": gym.spaces.Box(-1, 1, (5,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return {k: self.np_random.uniform(-1, 1, s.shape).astype(np.float32) for k, s in self.observation_space.items()}

    def step(self, action):
        self.t += 1
        return self._obs(), -float(np.sum(np.square(action))), False, self.t >= 8, {"is_success": self.t >= 8}


def test_config_is_mvps_and_schedules_cosine():
    cfg = PPOConfig()
    assert (cfg.n_envs, cfg.n_steps, cfg.epochs, cfg.minibatches, cfg.clip, cfg.gamma, cfg.gae_lambda, cfg.lr) == \
        (256, 32, 10, 4, 0.1, 0.99, 0.95, 1e-3)
    assert cfg.batch_size == 256 * 32 // 4
    schedule = cfg.learning_rate()
    assert schedule(1.0) == pytest.approx(1e-3) and schedule(0.5) == pytest.approx(5e-4) and schedule(0.0) == pytest.approx(0)
    assert PPOConfig(schedule="constant", lr=5e-4).learning_rate() == 5e-4
    with pytest.raises(ValueError, match="schedule"):
        PPOConfig(schedule="linear")
    with pytest.raises(ValueError, match="minibatches"):
        PPOConfig(n_envs=1, n_steps=2, minibatches=4)


def test_wrapper_computes_features_once_per_step():
    provider = CountingFeatures()
    env = FeatureObservation(DictEnv(), provider)
    assert set(env.observation_space.spaces) == {"features", "proprio"} and env.observation_space["features"].shape == (3,)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
    assert provider.calls == 6 and obs["features"].shape == (3,) and obs["proprio"].shape == (5,)
    no_proprio = FeatureObservation(DictEnv(), CountingFeatures(), proprio_key=None)
    assert set(no_proprio.observation_space.spaces) == {"features"}


def test_policy_is_mvps_actor_and_exports_exactly():
    """SB3's policy runs policies.Actor itself (feature->128, proprio->128, 256-128-64 SELU) as the mean, a second
    Actor as the critic; the exported Policy acts exactly as the trained Gaussian's mean."""
    from policies.ppo import export_policy

    provider = CountingFeatures()
    model = make_ppo(make_vec_env([DictEnv, DictEnv], provider), PPOConfig(n_envs=2, n_steps=16, epochs=1))
    model.learn(32)
    assert provider.calls == 2 + 32 + 4  # 2 first resets + one per env step + 2 autoresets per env (8-step episodes)
    nets = model.policy.mlp_extractor
    assert isinstance(nets.actor, Actor) and isinstance(nets.critic, Actor) and nets.critic.action_dim == 1
    assert nets.actor.feat_proj.out_features == nets.actor.proprio_proj.out_features == 128
    assert [m.out_features for m in nets.actor.mlp if isinstance(m, torch.nn.Linear)] == [256, 128, 64, 2]
    assert isinstance(model.policy.action_net, torch.nn.Identity)  # no layer of SB3's own after the actor
    trained = {id(p) for p in model.policy.optimizer.param_groups[0]["params"]}
    assert all(id(p) in trained for p in nets.actor.parameters()) and id(model.policy.log_std) in trained
    policy = export_policy(model)
    assert isinstance(policy, Policy) and policy.config.bound == "clip" and policy.proprio_dim == 5
    obs = {"features": torch.randn(6, 3) * 3, "proprio": torch.rand(6, 5) * 2 - 1}
    with torch.no_grad():
        mean = model.policy.get_distribution(obs).distribution.mean.numpy()
    np.testing.assert_allclose(policy.act(obs["features"], obs["proprio"]), mean, atol=1e-6)


def test_ppo_standardizes_features_by_the_same_rule_as_dagger_and_bc():
    """The median floor too: a dimension that barely moved in the stats' data must not blow up later."""
    from policies.ppo import set_feature_stats

    model = make_ppo(make_vec_env([DictEnv, DictEnv], CountingFeatures()), PPOConfig(n_envs=2, n_steps=16, epochs=1))
    features = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    features[:, 2] = 5.0 + 1e-5 * features[:, 2]  # nearly constant: std 1e-5
    set_feature_stats(model, features)
    actor = Actor(3, 5, 9)
    actor.set_feature_stats(features)
    for net in (model.policy.mlp_extractor.actor, model.policy.mlp_extractor.critic):
        torch.testing.assert_close(net.feat_std, actor.feat_std)
        torch.testing.assert_close(net.feat_mean, actor.feat_mean)
    assert actor.feat_std[2] > 0.05  # floored at 0.1 x the median std, not 1e-5


def test_smoke_franka_pick_state(tmp_path):
    """2 envs, 256 env steps on franka_pick with the privileged state: finishes, writes zip + policy + stats."""
    import sim
    from policies.ppo import train_ppo

    rows = []
    cfg = PPOConfig(n_envs=2, n_steps=64, epochs=2, stats_steps=8)
    model, stats = train_ppo(lambda: sim.make_env("franka_pick", obs_mode="proprio+state"), StateFeatures(), cfg, 256,
                             out_dir=tmp_path, proprio_key=None, callback=rows.append)
    assert [r["env_steps"] for r in stats] == [128, 256] and rows == stats
    assert all(np.isfinite(r["loss"]) for r in stats)
    for name in ("ppo_state.safetensors", "ppo_state.json", "ppo_optimizer.pt", "model.safetensors", "model.json"):
        assert (tmp_path / name).stat().st_size > 0
    actor = model.policy.mlp_extractor.actor
    assert actor.proprio_proj is None and actor.feat_proj.out_features == 256  # the state actor (Actor.for_state)
    assert not torch.all(actor.feat_std == 1)  # standardization set from the random-action warm-up
    policy = Policy.from_pretrained(tmp_path)
    assert policy.config.feat_dim == 29 and policy.proprio_dim == 0 and json.loads((tmp_path / "model.json").read_text())["stats"] == stats
    torch.testing.assert_close(policy.actor.feat_std, actor.feat_std)
    # resuming continues up to the new total
    _, more = train_ppo(lambda: sim.make_env("franka_pick", obs_mode="proprio+state"), StateFeatures(), cfg, 384,
                        out_dir=tmp_path, proprio_key=None)
    assert [r["env_steps"] for r in more] == [128, 256, 384] and [r["iteration"] for r in more] == [0, 1, 2]


def _crafted_sb3_zip(path, marker):
    """A real SB3 PPO zip whose `lr_schedule` entry is replaced by a pickle that creates `marker` when unpickled."""
    import base64
    import pickle
    import zipfile

    from policies.ppo import make_ppo, make_vec_env

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    make_ppo(make_vec_env([DictEnv], CountingFeatures()), PPOConfig(n_envs=1, n_steps=16, epochs=1)).save(path)
    with zipfile.ZipFile(path) as z:
        entries = {name: z.read(name) for name in z.namelist()}
    data = json.loads(entries["data"])
    data["lr_schedule"][":serialized:"] = base64.b64encode(pickle.dumps(Payload())).decode()
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in entries.items():
            z.writestr(name, blob)


def test_a_crafted_ppo_zip_runs_nothing_and_says_so_in_one_line(tmp_path):
    from policies.ppo import train_ppo
    from toto_robot.checkpoint import CheckpointError

    marker = tmp_path / "pwned"
    _crafted_sb3_zip(tmp_path / "ppo.zip", marker)
    with pytest.raises(CheckpointError, match="not read; delete it") as error:
        train_ppo(DictEnv, CountingFeatures(), PPOConfig(n_envs=1, n_steps=16, epochs=1, stats_steps=0), 32, out_dir=tmp_path)
    assert not marker.exists() and "\n" not in str(error.value)


def test_ppo_state_round_trip_restores_weights_optimizer_and_counters(tmp_path):
    from policies.ppo import load_ppo_state, make_ppo, make_vec_env, save_ppo_state

    cfg = PPOConfig(n_envs=1, n_steps=16, epochs=1, stats_steps=0)
    model = make_ppo(make_vec_env([DictEnv], CountingFeatures()), cfg)
    model.learn(32)
    save_ppo_state(model, cfg, tmp_path)
    again = load_ppo_state(make_vec_env([DictEnv], CountingFeatures()), cfg, tmp_path)
    for (name, a), b in zip(model.policy.state_dict().items(), again.policy.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    saved, loaded = model.policy.optimizer.state_dict(), again.policy.optimizer.state_dict()
    assert saved["state"].keys() == loaded["state"].keys() and len(saved["state"]) > 0
    torch.testing.assert_close(saved["state"][0]["exp_avg"], loaded["state"][0]["exp_avg"])
    assert (again.num_timesteps, again._n_updates) == (model.num_timesteps, model._n_updates) == (32, 2)
