"""The command line: inapplicable flags refused with their reason, help without heavy imports, help per method."""

import subprocess
import sys

import pytest

from wsrl.cli import main
from wsrl.config import ContinuedConfig, CQLConfig, IQLConfig, JSRLConfig, RetentionConfig, SACConfig, class_flags

SAC, CONTINUED = set(class_flags(SACConfig)), set(class_flags(ContinuedConfig))
RETENTION, JSRL = set(class_flags(RetentionConfig)), set(class_flags(JSRLConfig))
CQL_ONLY, IQL_ONLY = set(class_flags(CQLConfig)) - set(class_flags(IQLConfig)), set(class_flags(IQLConfig)) - set(
    class_flags(CQLConfig))

# docs/method.md §5: which parts each method leaves out. WSRL and its ablations use the SAC learner without data;
# the continued offline learners keep their own hyperparameters (no SAC flags); only retaining methods take data
# flags; only JSRL has a guide curriculum.
REFUSED = {
    ("train", "sac-fast"): CONTINUED | RETENTION | JSRL,
    ("train", "rlpd"): CONTINUED | JSRL,
    ("finetune", "wsrl"): CONTINUED | RETENTION | JSRL,
    ("finetune", "wsrl-no-warmup"): CONTINUED | RETENTION | JSRL,
    ("finetune", "wsrl-random-warmup"): CONTINUED | RETENTION | JSRL,
    ("finetune", "wsrl-retain"): CONTINUED | JSRL,
    ("finetune", "calql"): SAC | RETENTION | JSRL,
    ("finetune", "cql"): SAC | RETENTION | JSRL,
    ("finetune", "iql"): SAC | RETENTION | JSRL,
    ("finetune", "calql-retain"): SAC | JSRL,
    ("finetune", "cql-retain"): SAC | JSRL,
    ("finetune", "iql-retain"): SAC | JSRL,
    ("finetune", "calql-ensemble-utd"): SAC | JSRL,
    ("finetune", "jsrl"): CONTINUED | RETENTION,
}
PRETRAIN_REFUSED = {"iql": CQL_ONLY | {"--calql"}, "cql": IQL_ONLY | {"--calql"}, "calql": IQL_ONLY | {"--calql"}}
CASES = [(command, f"--method={name}", flag) for (command, name), flags in REFUSED.items() for flag in sorted(flags)]
CASES += [("pretrain", f"--algo={algo}", flag) for algo, flags in PRETRAIN_REFUSED.items() for flag in sorted(flags)]


@pytest.mark.parametrize("command, choice, flag", CASES)
def test_a_flag_the_method_or_algorithm_does_not_use_is_refused_with_its_reason(tmp_path, capsys, command, choice,
                                                                                  flag):
    out = tmp_path / "out"
    start = {"finetune": ["--from", str(tmp_path / "never-read")], "pretrain": ["--dataset", "never-read"]}.get(
        command, [])
    assert main([command, *start, choice, flag, "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"wsrl: error: {flag} ") and "\n" not in err
    assert choice.split("=")[1] in err  # names the method / algorithm it does not apply to
    assert not out.exists()


def test_no_reason_is_given_for_a_flag_that_applies():
    """The table above is complete: every other flag of a method appears in its help and is not refused."""
    from wsrl.config import flag_values
    from wsrl.resolve import base as _base
    from wsrl.resolve import refusal as _refusal

    for (command, name), refused in REFUSED.items():
        known, base = _base(command, ["--method", name])
        accepted = set(flag_values(base))
        assert not accepted & refused, (name, accepted & refused)
        assert accepted | refused >= SAC | CONTINUED | RETENTION | JSRL
        assert all(_refusal(flag, command, known, base) is None for flag in accepted)


def test_help_per_method_lists_its_flags_and_imports_nothing_heavy():
    code = ("import sys; from wsrl.cli import main; main(['train', '--method', 'rlpd', '--help']); "
            "print(sorted(m for m in ('jax', 'gymnasium', 'h5py', 'tensorboardX', 'minari') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"COLUMNS": "200", "PATH": ""})
    assert result.stdout.strip().endswith("[]")
    for flag in ("--offline-ratio", "--retain", "--dataset", "--utd", "--warmup-steps"):
        assert flag in result.stdout
    assert "--jsrl-stages" not in result.stdout and "--continued-utd" not in result.stdout


@pytest.mark.parametrize("args, message", [
    (["train", "--utd", "x"], "Error parsing --utd"),
    (["compare", "--dataset", "x"], "Missing from wsrl compare: --methods"),
    (["collect", "--recipe", "expert"], "invalid choice 'expert'"),
    (["plot", "--out", "x.png"], "at least one run directory"),
    (["train", "--from", "x"], "--from applies to `wsrl finetune`"),
    (["finetune", "--from", "x", "--algo", "cql"], "--algo chooses the pre-training algorithm"),
])
def test_usage_errors_are_one_line(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("wsrl: error:")
