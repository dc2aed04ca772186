"""The Python API: docs/api.md's example executed as written, and the API's refusals."""

import re
from pathlib import Path

import numpy as np
import pytest

import wsrl

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_the_api_is_importable_from_wsrl():
    for name in ("pretrain", "train", "finetune", "resume", "evaluate", "load_policy", "UserError", "Run", "Policy"):
        assert name in wsrl.__all__ and callable(getattr(wsrl, name))


@pytest.mark.slow
def test_docs_example_runs_arrays_to_pretrain_to_finetune_on_an_env_class_to_actions(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    example = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S).group(1)
    scope: dict = {"__name__": "example"}
    exec(compile(example, str(DOCS), "exec"), scope)
    pre, tuned, policy, action = (scope[k] for k in ("pre", "tuned", "policy", "action"))
    assert (pre.directory / "summary.json").is_file() and tuned.summary["env_steps"] == 1500
    assert tuned.config["env"] == "wsrl-callable/Reach" and tuned.metrics[-1]["env_step"] == 1500
    # Actions in the env's units: the data's [-2, 2] actions were mapped, never clipped, and mapped back.
    assert action.shape == (1,) and action.dtype == np.float32 and -2.0 <= action[0] <= 2.0
    batch = policy(np.zeros((4, 2), np.float32))
    assert batch.shape == (4, 1)
    unit = wsrl.load_policy(tuned)._act(wsrl.load_policy(tuned)._agent, np.zeros((1, 2), np.float32))[1]
    np.testing.assert_allclose(batch[0], 2.0 * np.clip(np.asarray(unit)[0], -1, 1), rtol=1e-5, atol=1e-6)
    assert len(list((tmp_path / "minari" / ".wsrl-arrays").glob("*.hdf5"))) == 1  # the arrays, saved once
    assert "eval_return" in capsys.readouterr().out


def test_api_refuses_bad_input_with_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    arrays = {"observations": np.zeros((10, 3)), "actions": np.zeros((10, 1)), "rewards": np.zeros(10),
              "terminals": np.zeros(10)}
    with pytest.raises(wsrl.UserError, match="has 9 rows, observations has 10"):
        wsrl.pretrain({**arrays, "rewards": np.zeros(9)}, out=tmp_path / "a")
    with pytest.raises(wsrl.UserError, match="NaN"):
        wsrl.pretrain({**arrays, "rewards": np.full(10, np.nan)}, out=tmp_path / "a")
    with pytest.raises(wsrl.UserError, match="unknown setting 'stepz'"):
        wsrl.pretrain(arrays, out=tmp_path / "a", stepz=3)
    with pytest.raises(wsrl.UserError, match="not a flag|is a setting of IQL"):
        wsrl.pretrain(arrays, algo="cql", out=tmp_path / "a", expectile=0.9)
    with pytest.raises(wsrl.UserError, match="utd sets the ensemble SAC learner"):
        wsrl.finetune("Hopper-v5", pretrained=tmp_path / "none", method="cql", utd=2, out=tmp_path / "b")
    with pytest.raises(wsrl.UserError, match="steps takes a int"):
        wsrl.train("Hopper-v5", steps="many", out=tmp_path / "c")
    with pytest.raises(wsrl.UserError, match="cannot import 'Nope' from 'no_such_module'"):
        wsrl.train("no_such_module:Nope", out=tmp_path / "d")
    with pytest.raises(wsrl.UserError, match=r"5 of 9 action entries lie outside \[-1, 1\] \(range 0 .. 2.667\)"):
        wsrl.pretrain({**arrays, "actions": np.linspace(0, 3, 10)[:, None]}, preset="cpu", out=tmp_path / "e",
                      steps=10)
    assert not any((tmp_path / n).exists() for n in "abcde")


@pytest.mark.slow
def test_cli_takes_env_as_module_attribute_and_suggests_misspelled_flags(tmp_path, monkeypatch, capsys):
    from wsrl.cli import main

    (tmp_path / "my_robot.py").write_text(
        "import gymnasium as gym\n\n\ndef make():\n    return gym.wrappers.TimeLimit(gym.make('InvertedPendulum-v5')"
        ".unwrapped, 30)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    assert main(["train", "--env", "my_robot:make", "--steps", "40", "--warmup-steps", "20", "--eval-episodes", "1",
                 "--eval-every", "40", "--critic-hidden-dims", "8", "--actor-hidden-dims", "8", "--num-critics", "2",
                 "--batch-size", "4", "--out", str(out)]) == 0
    assert wsrl.Run(out).config["env"] == "my_robot:make" and wsrl.Run(out).summary["env_steps"] == 40
    capsys.readouterr()
    assert main(["train", "--env", "my_robot:nothing", "--steps", "40", "--out", str(tmp_path / "x")]) == 2
    assert main(["train", "--env", "no_module_here:make", "--steps", "40", "--out", str(tmp_path / "x")]) == 2
    assert main(["train", "--warmup-step", "3", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "cannot import 'nothing' from 'my_robot'" in err[0]
    assert "cannot import 'make' from 'no_module_here'" in err[1]
    assert err[2] == ("wsrl: error: Unrecognized options: --warmup-step, 3; perhaps you meant --warmup-steps "
                      "(see `wsrl train --help`)")
    assert len(err) == 3 and not (tmp_path / "x").exists()
