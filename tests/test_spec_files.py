"""A damaged sweep spec or dataset suite (TOML) is one line naming the file and what is wrong, exit 2, and nothing is
written (issue 35)."""

import pytest

from wsrl.cli import main

SWEEP = 'command = "train"\nout = "{out}"\n[args]\nenv = "InvertedPendulum-v5"\nsteps = 300\n[grid]\nutd = [1, 2]\n'
SUITE = '[[dataset]]\nid = "test/ip-v0"\nenv = "InvertedPendulum-v5"\nsteps = 50\n'

DAMAGES = {
    "random bytes": (lambda text: bytes(range(256)) * 4, "UnicodeDecodeError"),
    "truncated": (lambda text: text.encode()[:len(text) // 2 + 3], "is not valid TOML"),
    "not TOML": (lambda text: b"{}", "is not valid TOML"),
}


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("kind", ["sweep", "suite"])
def test_an_unreadable_spec_or_suite_is_one_line_exit_2_nothing_written(tmp_path, capsys, minari_root, kind, damage):
    make, message = DAMAGES[damage]
    path = tmp_path / f"{kind}.toml"
    path.write_bytes(make((SWEEP if kind == "sweep" else SUITE).format(out=tmp_path / "sweep")))
    args = ["sweep", str(path), "--out", str(tmp_path / "sweep")] if kind == "sweep" else ["collect", "--suite",
                                                                                             str(path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "sweep").exists() and not minari_root.exists()


@pytest.mark.parametrize("text, message", [
    ('command = "train"\nsamples = "many"\n', "samples must be an integer, got 'many'"),
    ('command = "train"\nsamples = true\n', "samples must be an integer, got True"),
    ('command = "train"\ngrid = [1, 2]\n', "grid must be a table, got [1, 2]"),
    ('command = "train"\ncpus_per_trial = "1"\n', "cpus_per_trial must be a number, got '1'"),
    ('command = 3\n', "command must be a string, got 3"),
    ('command = "train"\nout = 3\n', "out must be a string, got 3"),
    ('command = "finetune"\npretrain = "runs/x"\n', "pretrain must be a table, got 'runs/x'"),
    ('command = "train"\ngpus_per_trial = 0\nseeds = 2\n', "unknown key(s) seeds; valid: args, command,"),
])
def test_a_wrongly_typed_sweep_key_is_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("text, message", [
    ('dataset = "x"\n', "expected only [[dataset]] tables"),
    ('title = "mine"\n' + SUITE, "expected only [[dataset]] tables"),
    ('[[dataset]]\nenv = "InvertedPendulum-v5"\n', "a [[dataset]] table has no string id"),
    ('[[dataset]]\nid = 7\n', "a [[dataset]] table has no string id"),
    (SUITE.replace("steps = 50", 'steps = "50"'), "CollectConfig.steps: '50' is not of type int"),
    (SUITE.replace("steps = 50", "stepz = 50"), "unknown field(s) stepz"),
    (SUITE + '[[dataset]]\nid = "test/b-v0"\nrecipe = "magic"\n', "dataset test/b-v0: CollectConfig.recipe"),
])
def test_a_damaged_suite_entry_is_one_line_before_anything_is_collected(tmp_path, capsys, minari_root, text,
                                                                        message):
    path = tmp_path / "suite.toml"
    path.write_text(text)
    assert main(["collect", "--suite", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not minari_root.exists()  # the valid first dataset was not collected either
