"""DAgger/BC on the real franka_pick task with state features (fast: no rendering, tiny budgets)."""
import shutil
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from policies import Actor, AggregatedBuffer, DaggerConfig, StateFeatures, rollout, train_dagger

TINY = {"steps_per_round": 200, "epochs": 3, "batch_size": 128}


class Recorder(gym.Wrapper):
    """Logs (state acted in, executed action) for every env.step."""

    def __init__(self, env):
        super().__init__(env)
        self.pairs, self.last = [], None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.last = obs["state"].copy()
        return obs, info

    def step(self, action):
        self.pairs.append((self.last, np.asarray(action).copy()))
        obs, *rest = self.env.step(action)
        self.last = obs["state"].copy()
        return (obs, *rest)


def test_beta_schedules():
    assert [DaggerConfig().beta(k) for k in range(4)] == [1.0, 0.5, 0.25, 0.125]
    assert [DaggerConfig(beta_schedule="linear", beta_decay=0.4).beta(k) for k in range(4)] == pytest.approx([1, 0.6, 0.2, 0])
    assert DaggerConfig(algo="bc", beta0=0.3).beta(5) == 1.0
    with pytest.raises(ValueError, match="algo"):
        DaggerConfig(algo="ppo")


def test_relabels_the_states_the_student_visits(pick_env):
    """beta=0: the student drives, and every state it acts in is stored with the expert's label."""
    env = Recorder(pick_env)
    label = np.linspace(-0.5, 0.5, 9).astype(np.float32)
    actor = Actor.for_state(29, 9)
    buffer = AggregatedBuffer()
    roll = rollout(gym.vector.SyncVectorEnv([lambda: env]), StateFeatures(), lambda state: label, actor, 0.0,
                   seed=0, steps=250, buffer=buffer)
    data = buffer.arrays()
    assert roll["steps"] == len(buffer) == len(env.pairs) == 250 and roll["episodes"] >= 1  # an episode ends (truncation at 160)
    np.testing.assert_array_equal(data["features"], np.stack([s for s, _ in env.pairs]))
    assert np.all(data["actions"] == label)
    executed = np.stack([a for _, a in env.pairs])
    np.testing.assert_allclose(executed, actor.act(data["features"]), atol=1e-6)  # the student's, not the label
    assert not np.allclose(executed, label)


def expert_states(env, expert, seed=123, steps=300):
    buffer = AggregatedBuffer()
    rollout(gym.vector.SyncVectorEnv([lambda: env]), StateFeatures(), expert, None, 1.0, seed=seed, steps=steps, buffer=buffer)
    return buffer.arrays()


def action_mse(actor, data):
    with torch.no_grad():
        return float(((actor(torch.from_numpy(data["features"])) - torch.from_numpy(data["actions"])) ** 2).mean())


def test_dagger_learns_the_expert(pick_env, pick_expert):
    held_out = expert_states(pick_env, pick_expert)
    untrained = Actor.for_state(29, 9)
    untrained.set_feature_stats(held_out["features"])
    config = DaggerConfig(rounds=3, steps_per_round=400, epochs=15, batch_size=128, eval_episodes=3)
    progress = []
    actor, stats = train_dagger(pick_env, StateFeatures(), pick_expert, config, on_step=progress.append)
    assert [s["env_steps"] for s in stats] == [400, 800, 1200] and stats[-1]["buffer"] == 1200
    # progress within each round: after every env step, the round's count climbing to its 400 (a reset
    # row adds none)
    for k in range(3):
        steps = [p["steps"] for p in progress if p["round"] == k]
        assert steps[0] <= 1 and steps[-1] == 400 and all(0 <= b - a <= 1 for a, b in zip(steps, steps[1:]))
    assert all(p["successes"] <= p["episodes"] for p in progress)
    assert [s["beta"] for s in stats] == [1.0, 0.5, 0.25]
    assert stats[0]["success_rate"] == 1.0  # round 0 is the expert alone
    assert all(np.isfinite(s["train_loss"]) and 0 <= s["eval_success_rate"] <= 1 for s in stats)
    before, after = action_mse(untrained, held_out), action_mse(actor, held_out)
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize("mode", [gym.vector.AutoresetMode.NEXT_STEP, gym.vector.AutoresetMode.SAME_STEP])
def test_bc_on_a_vector_env(mode):
    import sim
    from sim.experts import make_expert

    venv = gym.vector.SyncVectorEnv([lambda: sim.make_env("franka_pick", obs_mode="proprio+state")] * 2, autoreset_mode=mode)
    expert = make_expert("franka_pick", venv.envs[0].unwrapped.config)
    _, stats = train_dagger(venv, StateFeatures(), expert, DaggerConfig(algo="bc", rounds=5, **TINY))
    venv.close()
    assert len(stats) == 1 and stats[0]["env_steps"] == stats[0]["buffer"] >= 200
    assert stats[0]["episodes"] >= 2 and stats[0]["success_rate"] == 1.0


def test_resume_keeps_aggregated_data(tmp_path, pick_env, pick_expert):
    """Stopping after any round (even between the buffer and actor saves) and rerunning = one run."""
    def config(rounds):
        return DaggerConfig(rounds=rounds, **TINY)

    _, straight = train_dagger(pick_env, StateFeatures(), pick_expert, config(3), out_dir=tmp_path / "a")

    train_dagger(pick_env, StateFeatures(), pick_expert, config(2), out_dir=tmp_path / "b")
    kept = AggregatedBuffer.load(tmp_path / "b" / "buffer.npz").arrays()
    assert set(kept["rounds"].tolist()) == {0, 1}
    _, resumed = train_dagger(pick_env, StateFeatures(), pick_expert, config(3), out_dir=tmp_path / "b")
    final = AggregatedBuffer.load(tmp_path / "b" / "buffer.npz").arrays()
    np.testing.assert_array_equal(final["features"][: len(kept["features"])], kept["features"])  # rounds 0-1 kept
    assert resumed == straight

    c = tmp_path / "c"  # crash after round 1's buffer was saved, before its policy was
    train_dagger(pick_env, StateFeatures(), pick_expert, config(1), out_dir=c)
    for name in ("model.json", "model.safetensors"):
        shutil.copy(c / name, tmp_path / name)
    train_dagger(pick_env, StateFeatures(), pick_expert, config(2), out_dir=c)
    for name in ("model.json", "model.safetensors"):
        shutil.copy(tmp_path / name, c / name)
    _, redone = train_dagger(pick_env, StateFeatures(), pick_expert, config(3), out_dir=c)
    assert redone == straight
    with pytest.raises(ValueError, match="lr=0.001"):
        train_dagger(pick_env, StateFeatures(), pick_expert, DaggerConfig(rounds=4, lr=3e-4, **TINY), out_dir=c)
    np.testing.assert_array_equal(AggregatedBuffer.load(c / "buffer.npz").arrays()["actions"],
                                  AggregatedBuffer.load(tmp_path / "a" / "buffer.npz").arrays()["actions"])


def test_policies_do_not_import_sim():
    code = "import sys, policies; bad = [m for m in ('sim', 'real') if m in sys.modules]; assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bc_on_pixels_through_a_frozen_encoder(tmp_path):
    """End to end with rendering: wrist pixels -> frozen (tiny, random) Toto -> MVP actor with proprio."""
    import sim
    from sim.experts import make_expert

    from policies import TotoFeatures
    from tests.encoder.conftest import make_encoder_dir
    from toto_robot import load_encoder

    encoder = load_encoder(make_encoder_dir(tmp_path / "enc"), dtype="fp32")  # 32 px frames
    env = sim.make_env("franka_pick", obs_mode="pixels+proprio+state", image_size=32)
    expert = make_expert("franka_pick", env.unwrapped.config)
    actor, stats = train_dagger(env, TotoFeatures(encoder), expert, DaggerConfig(algo="bc", steps_per_round=60, epochs=2),
                                out_dir=tmp_path / "run")
    env.close()
    data = AggregatedBuffer.load(tmp_path / "run" / "buffer.npz").arrays()
    assert (actor.config.feat_dim, actor.proprio_dim, actor.config.action_dim) == (encoder.dim, 18, 9)
    assert data["features"].shape == (60, encoder.dim) and data["proprio"].shape == (60, 18)
    assert stats[0]["env_steps"] == 60 and np.isfinite(stats[0]["train_loss"])
    assert all(p.grad is None for p in encoder.parameters())


class FixedOutcomeEnv(gym.Env):
    """Env `index`: every episode succeeds in 2 steps if index is even, fails after 20 steps if odd."""

    observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (1,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self, index):
        self.index, self.t = index, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return {"state": np.zeros(1, np.float32)}, {}

    def step(self, action):
        self.t += 1
        win = self.index % 2 == 0
        done = self.t >= (2 if win else 20)
        return {"state": np.zeros(1, np.float32)}, 0.0, done and win, done and not win, {"success": done and win}


@pytest.mark.parametrize("mode", [gym.vector.AutoresetMode.NEXT_STEP, gym.vector.AutoresetMode.SAME_STEP])
def test_episode_counts_do_not_favour_short_episodes(mode):
    # Counting the first 8 episodes to finish would count only the fast successes (rate 1.0);
    # a quota per env fixed in advance counts each env's first episode: 4 of 8.
    venv = gym.vector.SyncVectorEnv([lambda i=i: FixedOutcomeEnv(i) for i in range(8)], autoreset_mode=mode)
    actor = Actor.for_state(1, 1)
    result = rollout(venv, StateFeatures(), None, actor, 0.0, seed=0, episodes=8)
    assert (result["episodes"], result["successes"]) == (8, 4)
    result = rollout(venv, StateFeatures(), None, actor, 0.0, seed=0, episodes=12)  # quotas 2,2,2,2,1,1,1,1: envs 0, 2 win twice, 4, 6 once
    assert (result["episodes"], result["successes"]) == (12, 6)


class CountingFeatures(StateFeatures):
    """State features that count the rows they are asked to encode."""

    rows = 0

    def __call__(self, obs):
        self.rows += len(obs["state"])
        return super().__call__(obs)


@pytest.mark.parametrize("mode", [gym.vector.AutoresetMode.NEXT_STEP, gym.vector.AutoresetMode.SAME_STEP])
def test_evaluation_encodes_only_the_rows_that_count(mode):
    # 8 envs, 6 episodes: envs 6 and 7 have no quota, and the fast winners (2 steps) finish long
    # before the slow losers (20). Their frames must not go through the encoder.
    venv = gym.vector.SyncVectorEnv([lambda i=i: FixedOutcomeEnv(i) for i in range(8)], autoreset_mode=mode)
    provider = CountingFeatures()
    result = rollout(venv, provider, None, Actor.for_state(1, 1), 0.0, seed=0, episodes=6)
    assert (result["episodes"], result["successes"]) == (6, 3)
    assert provider.rows == result["steps"] == 3 * 2 + 3 * 20  # every step of envs 0-5's first episode, nothing else


def test_attn_pool_trains_with_the_actor_and_two_loads_act_alike(tmp_path):
    """pool=attn: the encoder hands over an 8 x 8 grid of tokens; the attention pool trains with the
    actor, saves in model.safetensors, and every load of the policy gives the same actions."""
    import sim
    from sim.experts import make_expert

    from policies import EncoderSpec, Policy, PolicyConfig
    from policies.configuration import ATTN_CELLS
    from policies.features import make_features
    from tests.encoder.conftest import make_encoder_dir

    path = make_encoder_dir(tmp_path / "enc", resolution=64)  # an 8 x 8 token grid
    spec = EncoderSpec(kind="toto", path=str(path), pool="attn", dtype="fp32", device="cpu")
    provider = make_features(spec)
    assert provider.dim == ATTN_CELLS**2 * 32  # the tokens, not one pooled vector
    env = sim.make_env("franka_pick", obs_mode="pixels+proprio+state", image_size=64)
    expert = make_expert("franka_pick", env.unwrapped.config)
    template = PolicyConfig(encoder=spec, resolution=64)
    policy, _ = train_dagger(env, provider, expert, DaggerConfig(algo="bc", steps_per_round=40, epochs=2),
                             out_dir=tmp_path / "run", template=template)
    torch.manual_seed(DaggerConfig().seed)  # as make_policy seeds the fresh policy
    untrained = Policy(policy.config).actor.pool
    assert not torch.equal(policy.actor.pool.query, untrained.query)  # the pool trained
    assert not torch.equal(policy.actor.pool.wk.weight, untrained.wk.weight)
    obs, _ = env.reset(seed=3)
    env.close()
    first, second = (Policy.from_pretrained(tmp_path / "run", device="cpu", dtype="fp32") for _ in range(2))
    assert "actor.pool.query" in first.state_dict()
    np.testing.assert_array_equal(first.select_action(obs), second.select_action(obs))
    np.testing.assert_allclose(first.select_action(obs), policy.select_action(obs), atol=1e-6)
