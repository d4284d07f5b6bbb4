"""MVP's actor: shapes, bounds, feature standardization, and a frozen encoder that gets no gradient."""
import numpy as np
import pytest
import torch

from policies import Actor, RandomTotoFeatures, TotoFeatures, random_encoder
from tests.encoder.conftest import make_encoder_dir
from toto_robot import load_encoder


@pytest.mark.parametrize("bound", ["tanh", "clip"])
def test_actor_shapes_and_bounds(bound):
    actor = Actor(192, 18, 9, bound=bound)
    assert [m.out_features for m in (actor.feat_proj, actor.proprio_proj)] == [128, 128]
    assert [m.out_features for m in actor.mlp if isinstance(m, torch.nn.Linear)] == [256, 128, 64, 9]
    assert sum(isinstance(m, torch.nn.SELU) for m in actor.mlp) == 3
    f, p = 100 * torch.randn(5, 192), torch.randn(5, 18)
    assert actor(f, p).shape == (5, 9)
    action = actor.act(f.numpy(), p.numpy())
    assert action.shape == (5, 9) and action.dtype == np.float32 and np.abs(action).max() <= 1.0
    with pytest.raises(ValueError, match="proprio"):
        actor(f)


def test_state_actor_reads_only_the_state():
    actor = Actor.for_state(29, 9)
    assert actor.proprio_proj is None and actor.feat_proj.out_features == 256
    assert actor(torch.randn(3, 29)).shape == (3, 9)


def test_feature_stats_standardize_inputs():
    actor = Actor(4, 2, 3)
    features = np.array([[0.1, 5.0, 0.0, 1.0], [0.3, 7.0, 0.0, 3.0]], np.float32)
    actor.set_feature_stats(features)
    seen = []
    actor.feat_proj.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    actor(torch.from_numpy(features), torch.zeros(2, 2))
    x = seen[0]
    assert torch.allclose(x.mean(0), torch.zeros(4), atol=1e-6)
    assert torch.allclose(x[:, [0, 1, 3]].std(0), torch.ones(3), atol=1e-5) and torch.all(x[:, 2] == 0)  # constant dim: std 1
    assert "feat_mean" in actor.state_dict()  # saved with the weights


def test_feature_stats_floor_nearly_constant_dims():
    """A dim the expert barely moved gets std 0.1 x the median, so later states cannot blow it up."""
    rng = np.random.default_rng(0)
    features = rng.normal(0, 1, (500, 5)).astype(np.float32)
    features[:, 4] = 0.3 + rng.normal(0, 1e-5, 500)  # nearly constant in round 0
    actor = Actor(5, 0, 2)
    actor.set_feature_stats(features)
    median = float(np.median(features.std(0, ddof=1)))
    assert actor.feat_std[4].item() == pytest.approx(0.1 * median, rel=0.05)
    assert actor.feat_std[:4].numpy() == pytest.approx(features[:, :4].std(0, ddof=1), rel=1e-4)  # others untouched
    actor.set_feature_stats(np.ones((3, 5), np.float32))  # every dim constant: unit scale
    assert torch.all(actor.feat_std == 1)


def test_encoder_gets_no_gradient(tmp_path):
    """A training step through TotoFeatures updates the actor and leaves every encoder .grad None."""
    encoder = load_encoder(make_encoder_dir(tmp_path / "enc"), dtype="fp32")
    provider = TotoFeatures(encoder)
    pixels = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    features = provider({"pixels": pixels})
    assert features.shape == (6, provider.dim) and features.dtype == np.float32
    actor = Actor(provider.dim, 4, 3)
    before = [p.detach().clone() for p in actor.parameters()]
    optimizer = torch.optim.AdamW(actor.parameters(), lr=1e-2)
    loss = (actor(torch.from_numpy(features), torch.zeros(6, 4)) - 0.5).pow(2).mean()
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, actor.parameters()))
    assert all(p.grad is None and not p.requires_grad for p in encoder.parameters())


def test_random_toto_features(tmp_path):
    """Same architecture as the checkpoint, seeded untrained weights, features that follow the image."""
    directory = make_encoder_dir(tmp_path / "enc")
    trained = load_encoder(directory, dtype="fp32")
    state = torch.get_rng_state()
    a, b, c = (RandomTotoFeatures(directory, layer="mid", pool="avg", seed=seed) for seed in (0, 0, 1))
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone
    assert a.dim == trained.dim and a.encoder.layer == trained.layer
    pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    fa = a({"pixels": pixels})
    assert np.array_equal(fa, b({"pixels": pixels})) and not np.allclose(fa, c({"pixels": pixels}))
    assert not np.allclose(fa, TotoFeatures(trained)({"pixels": pixels}))
    assert fa.std(0).mean() > 1e-4  # codes (and so features) follow the image content
    random_state, trained_state = random_encoder(directory, pool="avg", seed=0, dtype="fp32").model.state_dict(), trained.model.state_dict()
    assert random_state.keys() == trained_state.keys()
    assert not any(torch.equal(random_state[k], trained_state[k]) for k in random_state if k.endswith("wq.weight"))
