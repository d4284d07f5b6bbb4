"""The aggregated buffer: growth, atomic save/load, dropping an unfinished round."""
import numpy as np
import pytest

from policies import AggregatedBuffer


def rows(n, seed=0, proprio=2):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)), rng.normal(size=(n, proprio)), rng.uniform(-1, 1, (n, 3))


def test_grows_saves_and_loads(tmp_path):
    buffer = AggregatedBuffer()
    buffer.add(*rows(4, 0), round_index=0)
    buffer.add(*rows(3, 1), round_index=1)
    assert len(buffer) == 7
    path = buffer.save(tmp_path / "buffer.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["buffer.npz"]  # no temporary left behind
    loaded = AggregatedBuffer.load(path)
    for name, value in buffer.arrays().items():
        np.testing.assert_array_equal(loaded.arrays()[name], value)
    assert loaded.arrays()["rounds"].tolist() == [0] * 4 + [1] * 3
    assert loaded.arrays()["features"].dtype == np.float32


def test_keep_rounds_drops_later_rows():
    buffer = AggregatedBuffer()
    buffer.add(*rows(4, 0), round_index=0)
    buffer.add(*rows(3, 1), round_index=1)
    assert buffer.keep_rounds(0) == 3 and len(buffer) == 4
    buffer.add(*rows(2, 2), round_index=1)
    assert buffer.arrays()["rounds"].tolist() == [0] * 4 + [1] * 2


def test_empty_proprio_and_shape_errors():
    buffer = AggregatedBuffer()
    f, _, a = rows(3)
    buffer.add(f, np.zeros((3, 0)), a, 0)
    assert buffer.arrays()["proprio"].shape == (3, 0)
    with pytest.raises(ValueError, match="features"):
        buffer.add(np.zeros((2, 6)), np.zeros((2, 0)), np.zeros((2, 3)), 1)
    with pytest.raises(ValueError, match="one B"):
        buffer.add(np.zeros((2, 5)), np.zeros((2, 0)), np.zeros((3, 3)), 1)
    with pytest.raises(ValueError, match="empty"):
        AggregatedBuffer().arrays()
