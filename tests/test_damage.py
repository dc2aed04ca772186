"""A damaged checkpoint is never loaded: every command that reads meta.json gives one line naming the file and exit
2, and leaves every file as it was (issue 35)."""

import json
import shutil
from pathlib import Path

import pytest

from wsrl.cli import main

pytestmark = pytest.mark.slow  # runs whole `wsrl` commands or processes (`pytest -m "not slow"` skips it)

TINY = ["--actor-hidden-dims", "8", "--critic-hidden-dims", "8", "8", "--num-critics", "4", "--batch-size", "5",
        "--utd", "2", "--eval-episodes", "1", "--log-every", "10"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("damage") / "run"
    assert main(["train", "--env", "InvertedPendulum-v5", "--steps", "25", "--warmup-steps", "20", "--out", str(out),
                 *TINY]) == 0
    return out


def _edit(key, value):
    def damage(path: Path) -> None:
        meta = json.loads(path.read_text())
        meta[key] = value
        path.write_text(json.dumps(meta))
    return damage


def _edit_agent(key, value):
    def damage(path: Path) -> None:
        meta = json.loads(path.read_text())
        meta["agent_config"][key] = value
        path.write_text(json.dumps(meta))
    return damage


DAMAGES = {
    "random bytes": (lambda p: p.write_bytes(bytes(range(256)) * 4), "unreadable meta.json"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "unreadable meta.json"),
    "empty": (lambda p: p.write_bytes(b""), "unreadable meta.json"),
    "a list": (lambda p: p.write_text("[1, 2]"), "not a JSON object but a list"),
    "a string": (lambda p: p.write_text('"meta"'), "not a JSON object but a str"),
    "an empty object": (lambda p: p.write_text("{}"), "obs_dim must be a positive integer, got None"),
    "unknown learner": (_edit("algo", "ppo"), "unknown learner 'ppo'"),
    "agent_config not a mapping": (_edit("agent_config", [1]), "agent_config must be a JSON object"),
    "wrongly typed size": (_edit("obs_dim", "4"), "obs_dim must be a positive integer, got '4'"),
    "wrongly typed field": (_edit_agent("num_critics", "4"), "SACConfig.num_critics: '4' is not of type int"),
    "unknown field": (_edit_agent("wings", 2), "unknown field(s) wings"),
    "other network sizes": (_edit_agent("critic_hidden_dims", [64, 64]), "does not fit"),
}

COMMANDS = {
    "finetune": lambda run, tmp: ["finetune", "--from", str(run), "--steps", "25", "--warmup-steps", "20",
                                  "--batch-size", "5", "--utd", "2", "--eval-episodes", "1", "--out", str(tmp / "new")],
    "eval": lambda run, tmp: ["eval", "--from", str(run), "--eval-episodes", "1"],
    "resume": lambda run, tmp: ["resume", str(run), "--steps", "40"],
    "export": lambda run, tmp: ["export", str(run), "--out", str(tmp / "policy.npz")],
    "collect": lambda run, tmp: ["collect", "--env", "InvertedPendulum-v5", "--recipe", "policy", "--from", str(run),
                                 "--steps", "10", "--out", "test/damaged-v0"],
}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_meta_json_is_one_line_exit_2_and_nothing_changes(tmp_path, monkeypatch, capsys, run, damage,
                                                                    command):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    meta = sorted((copy / "checkpoints").glob("step_*"))[-1] / "meta.json"
    apply, message = DAMAGES[damage]
    apply(meta)
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(COMMANDS[command](copy, tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wsrl: error:") and "\n" not in err and message in err, err
    if message != "does not fit":
        assert str(meta) in err  # names the file
    assert snapshot(tmp_path) == before


def _edit_json(key, value, inner=None):
    def damage(path: Path) -> None:
        record = json.loads(path.read_text())
        (record[inner] if inner else record)[key] = value
        path.write_text(json.dumps(record))
    return damage


def _drop_json(key):
    def damage(path: Path) -> None:
        record = json.loads(path.read_text())
        del record[key]
        path.write_text(json.dumps(record))
    return damage


RANDOM = lambda p: p.write_bytes(bytes(range(256)) * 4)  # noqa: E731
EMPTY = lambda p: p.write_bytes(b"")  # noqa: E731
HALF = lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])  # noqa: E731
# file (in the run directory, or in its newest checkpoint), damage, what the one line says, the commands that read it
FILES = [
    ("config.json", RANDOM, "config.json: unreadable", ("resume", "finetune", "plot")),
    ("config.json", EMPTY, "config.json: unreadable", ("resume", "finetune", "plot")),
    ("config.json", lambda p: p.write_text("[1]"), "config.json: not a JSON object but a list",
     ("resume", "finetune", "plot")),
    ("config.json", _edit_json("config", 3), "config.json: config must be a JSON object", ("resume", "plot")),
    ("config.json", _edit_json("seeds", "0"), "config.json: seeds must be a list", ("resume", "finetune", "plot")),
    ("config.json", _edit_json("steps", "x", inner="config"), "OnlineConfig.steps: 'x' is not of type int",
     ("resume", "finetune", "plot")),
    ("config.json", _edit_json("warmup_steps", [1], inner="config"), "OnlineConfig.warmup_steps: (1,) is not of type",
     ("resume", "finetune", "plot")),
    ("config.json", _edit_json("wings", 2, inner="config"), "unknown field(s) wings", ("resume", "finetune", "plot")),
    ("loop.json", RANDOM, "unreadable loop.json", ("resume",)),
    ("loop.json", HALF, "unreadable loop.json", ("resume",)),
    ("loop.json", lambda p: p.write_text('"loop"'), "loop.json: not a JSON object", ("resume",)),
    ("loop.json", _drop_json("metrics_bytes"), "missing or wrongly typed metrics_bytes", ("resume",)),
    ("loop.json", _edit_json("env_step", "25"), "missing or wrongly typed env_step", ("resume",)),
    ("buffer.npz", RANDOM, "corrupt buffer.npz", ("resume",)),
    ("buffer.npz", EMPTY, "corrupt buffer.npz", ("resume",)),
    ("buffer.npz", HALF, "corrupt buffer.npz", ("resume",)),
    ("agent.msgpack", RANDOM, "corrupt or missing agent.msgpack", ("finetune", "eval", "resume", "export", "collect")),
    ("agent.msgpack", HALF, "corrupt or missing agent.msgpack", ("finetune", "eval", "resume", "export", "collect")),
    ("metrics.csv", RANDOM, "metrics.csv: unreadable", ("plot",)),
]
READERS = {**COMMANDS, "plot": lambda run, tmp: ["plot", str(run), "--out", str(tmp / "curves.png")]}


@pytest.mark.parametrize("name, damage, message, commands", FILES,
                         ids=[f"{f[0]}-{i}" for i, f in enumerate(FILES)])
def test_every_damaged_file_of_a_run_is_one_line_exit_2_and_nothing_changes(tmp_path, monkeypatch, capsys, run, name,
                                                                            damage, message, commands):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    newest = sorted((copy / "checkpoints").glob("step_*"))[-1]
    target = copy / name if (copy / name).is_file() else newest / name
    damage(target)
    before = snapshot(tmp_path)
    for command in commands:
        capsys.readouterr()
        assert main(READERS[command](copy, tmp_path)) == 2, command
        err = capsys.readouterr().err.strip()
        assert err.startswith("wsrl: error:") and "\n" not in err and message in err, (command, err)
        assert snapshot(tmp_path) == before, command


@pytest.mark.parametrize("damage, message", [(RANDOM, "unreadable loop.json"),
                                             (_drop_json("step"), "missing or wrongly typed step"),
                                             (_edit_json("metrics_bytes", -0.5), "wrongly typed metrics_bytes")])
def test_a_damaged_offline_loop_state_is_one_line_exit_2(tmp_path, monkeypatch, capsys, damage, message):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    assert main(["collect", "--env", "InvertedPendulum-v5", "--steps", "200", "--out", "test/ip-v0"]) == 0
    pre = tmp_path / "pre"
    assert main(["pretrain", "--dataset", "test/ip-v0", "--algo", "iql", "--steps", "10", "--checkpoint-every", "10",
                 "--out", str(pre), *TINY[:5], "--batch-size", "5", "--eval-episodes", "1"]) == 0
    damage(pre / "checkpoints" / "step_10" / "loop.json")
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(["resume", str(pre), "--steps", "20"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wsrl: error:") and "\n" not in err and message in err, err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("text, message", [("[1]", "summary.json: not a JSON object but a list"),
                                           ('{"train_episodes": "3"}', "train_episodes must be a non-negative"),
                                           ("\x00\x01", "unreadable summary.json")])
def test_a_damaged_summary_is_one_user_error_for_compare_and_the_api(tmp_path, run, text, message):
    from wsrl import Run, UserError
    from wsrl.compare import result_row

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "summary.json").write_text(text)
    with pytest.raises(UserError, match=message):
        result_row("wsrl", 0, copy)
    with pytest.raises(UserError, match=message):
        assert Run(copy).summary is None  # never reached: reading it raises


def _episode_0(edit):
    def damage(path: Path) -> None:
        import h5py

        with h5py.File(path, "r+") as f:
            edit(f["episode_0"])
    return damage


def _replace(name, make):
    def edit(group) -> None:
        values = group[name][()]
        del group[name]
        group[name] = make(values)
    return edit


DATA_DAMAGES = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "corrupt or truncated hdf5"),
    "random bytes": (lambda p: p.write_bytes(bytes(range(256)) * 40), "corrupt or truncated hdf5"),
    "a missing array": (_episode_0(lambda g: g.__delitem__("rewards")), "'rewards' doesn't exist"),
    "too few actions": (_episode_0(_replace("actions", lambda a: a[:-3])), "observations for"),
    "actions of text": (_episode_0(_replace("actions", lambda a: [b"x"] * len(a))), "cannot be read as numbers"),
    "another action size": (_episode_0(_replace("actions", lambda a: a.repeat(2, axis=1))),
                            "episode 1 has observation/action dims 4/1, the first episode 4/2"),
    "rewards of another length": (_episode_0(_replace("rewards", lambda r: r[:-1])), "rewards / terminations"),
}


@pytest.mark.parametrize("damage", DATA_DAMAGES)
def test_a_damaged_minari_file_is_one_line_exit_2_for_every_reader(tmp_path, monkeypatch, capsys, damage):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    assert main(["collect", "--env", "InvertedPendulum-v5", "--steps", "300", "--out", "test/ip-v0"]) == 0
    apply, message = DATA_DAMAGES[damage]
    apply(tmp_path / "minari" / "test" / "ip-v0" / "data" / "main_data.hdf5")
    before = snapshot(tmp_path)
    for command in (["data", "info", "test/ip-v0"],
                    ["pretrain", "--dataset", "test/ip-v0", "--algo", "iql", "--steps", "10", "--out",
                     str(tmp_path / "pre"), "--eval-episodes", "1"]):
        capsys.readouterr()
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("wsrl: error:") and "\n" not in err and message in err, err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("arrays, message", [
    ({"actions": [[b"x"]] * 5}, "do not fit together"),
    ({"rewards": [0.0] * 4}, "5 actions but rewards / terminations / truncations of lengths 4 / 5 / 5"),
])
def test_a_damaged_d4rl_file_is_one_line_exit_2(tmp_path, capsys, arrays, message):
    import h5py
    import numpy as np

    path = tmp_path / "data.hdf5"
    data = {"observations": np.zeros((5, 3)), "actions": np.zeros((5, 2)), "rewards": np.zeros(5),
            "terminals": np.eye(5)[-1], **arrays}
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            f[key] = value
    assert main(["data", "info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wsrl: error:") and "\n" not in err and message in err, err
