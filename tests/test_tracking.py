"""--wandb: the same scalars as metrics.csv, the config and the final plot, read back from the files W&B writes
in its offline mode."""

import csv
import json
import struct
import sys
from pathlib import Path

import pytest

from wsrl.cli import main

pytestmark = pytest.mark.slow  # runs whole `wsrl` commands or processes (`pytest -m "not slow"` skips it)

TINY = ["train", "--env", "InvertedPendulum-v5", "--steps", "60", "--warmup-steps", "20", "--actor-hidden-dims", "8",
        "--critic-hidden-dims", "8", "8", "--num-critics", "2", "--batch-size", "8", "--eval-episodes", "1",
        "--eval-every", "20", "--log-every", "20"]


def wandb_records(path: Path) -> list:
    """The protobuf records of a .wandb file: a 7-byte header, then LevelDB's log format (32 KiB blocks of
    chunks, each with a 7-byte header: checksum, length, type full / first / middle / last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, chunks, partial = 7, [], b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7]) if left >= 7 else (0, 0)
        if kind == 0:  # the zero padding at a block's end
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            chunks.append(chunk)
        elif kind == 2:
            partial = chunk
        elif kind == 3:
            partial += chunk
        else:
            chunks.append(partial + chunk)
    return [wandb_internal_pb2.Record.FromString(chunk) for chunk in chunks]


def test_wandb_logs_the_metrics_config_and_plot_of_every_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "run"
    assert main([*TINY, "--seeds", "2", "--wandb", "--wandb-project", "tests", "--out", str(out)]) == 0
    for seed in (0, 1):
        run_dir = out / f"seed{seed}"
        [offline] = list((run_dir / "wandb").glob("offline-run-*"))
        [log] = list(offline.glob("run-*.wandb"))
        records = wandb_records(log)
        runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        kinds = [r.WhichOneof("record_type") for r in records]
        assert len(runs) == 1, f"{log} ({log.stat().st_size} bytes) holds {len(runs)} run records: {kinds}"
        [run] = runs
        assert (run.project, run.run_group, run.display_name) == ("tests", "run", f"run/seed{seed}")
        config = {u.key: json.loads(u.value_json) for u in run.config.update}
        assert config["config"] == json.loads((run_dir / "config.json").read_text())["config"]
        rows = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
                for r in records if r.WhichOneof("record_type") == "history"]
        *scalars, figure = [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
        with open(run_dir / "metrics.csv") as f:
            expected = [{k: float(v) for k, v in row.items() if v and k != "phase"} for row in csv.DictReader(f)]
        assert len(scalars) == len(expected) >= 6  # every row, every value, in order
        for logged, row in zip(scalars, expected, strict=True):
            assert logged.keys() == row.keys() and list(logged.values()) == pytest.approx([row[k] for k in logged])
        image = offline / "files" / figure["curves/path"]
        assert figure["curves/format"] == "png" and image.stat().st_size > 10_000
        assert (run_dir / "curves.png").stat().st_size > 10_000  # every finished run directory has its plot


def test_wandb_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: not logged in
    assert main([*TINY, "--wandb", "--out", str(out)]) == 2
    assert "--wandb: not logged in to W&B; run `wandb login`, or set WANDB_MODE=offline" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "wandb", None)  # as without the extra installed
    assert main([*TINY, "--wandb", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == "wsrl: error: --wandb needs W&B: pip install 'wsrl[wandb]'"
    assert not out.exists()
