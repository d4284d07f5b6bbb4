"""One rule decides whether a run directory may be resumed (toto_robot/resume.py)."""
import pytest

from toto_robot.resume import changed, check_resumable, flat


def test_nested_settings_compare_key_by_key_as_json_stores_them():
    assert flat({"algo": {"rounds": 6, "betas": (0.9, 0.95)}, "seed": 0}) == {"algo.rounds": 6, "algo.betas": [0.9, 0.95], "seed": 0}
    saved = {"algo": {"rounds": 6, "lr": 1e-3}, "seed": 0, "videos": 2}
    assert changed(saved, {"algo": {"rounds": 8, "lr": 1e-3}, "seed": 0, "videos": 2}) == ["algo.rounds"]
    assert changed(saved, {"algo": {"rounds": 8, "lr": 1e-3}, "seed": 0, "videos": 0}, ["algo.rounds", "videos"]) == []
    assert changed(saved, {"algo": {"rounds": 6}, "seed": 0, "videos": 2}) == ["algo.lr"]  # a setting gone counts too


def test_a_refusal_names_each_setting_its_saved_and_new_value(tmp_path):
    saved, now = {"algo": {"lr": 0.001}, "task": "franka_pick"}, {"algo": {"lr": 0.01}, "task": "kuka_pick"}
    with pytest.raises(ValueError) as error:
        check_resumable(tmp_path, "a run", saved, now, hint="pass another out=")
    assert str(error.value) == (f"{tmp_path} holds a run made with other algo.lr=0.001 (now 0.01), "
                                "task='franka_pick' (now 'kuka_pick'): pass another out=")
    check_resumable(tmp_path, "a run", saved, {**now, "algo": {"lr": 0.001}, "task": "franka_pick"})  # same: fine
