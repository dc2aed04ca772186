"""Suites: TOML lists of datasets to collect, shipped with wsrl (`suites/*.toml`) or given by path."""

from __future__ import annotations

import time
import tomllib
from dataclasses import fields
from importlib import resources
from pathlib import Path

from wsrl.collect.recipes import collect, ladder_ids
from wsrl.config import CollectConfig
from wsrl.data.loaders import find_minari
from wsrl.errors import UserError


def shipped_suites() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in resources.files("wsrl.collect").joinpath("suites").iterdir()
                  if p.name.endswith(".toml"))


def suite_text(name: str) -> str:
    """A suite's TOML: NAME as a file path, or a suite shipped with wsrl."""
    if Path(name).is_file():
        return Path(name).read_text()
    if name in shipped_suites():
        return resources.files("wsrl.collect").joinpath("suites", f"{name}.toml").read_text()
    raise UserError(f"no suite {name!r}: neither a file nor one of the suites shipped with wsrl "
                    f"({', '.join(shipped_suites())})")


def collect_suite(name: str, overwrite: bool = False, only: str | None = None) -> list[Path]:
    """Collect every dataset a suite lists (or only the one of id `only`), skipping those already present (so an
    interrupted suite resumes)."""
    entries = tomllib.loads(suite_text(name)).get("dataset", [])
    if only is not None:
        ids = [entry.get("id") for entry in entries]
        if only not in ids:
            raise UserError(f"suite {name} has no dataset {only!r}; its ids: {', '.join(map(str, ids))}")
        entries = [entry for entry in entries if entry.get("id") == only]
    known = {f.name for f in fields(CollectConfig)}
    written = []
    for entry in entries:
        entry = dict(entry)
        dataset_id = entry.pop("id")
        unknown = set(entry) - known
        if unknown:
            raise UserError(f"suite {name}: unknown keys {sorted(unknown)} in dataset {dataset_id}")
        config = CollectConfig(**entry)
        targets = ladder_ids(dataset_id).values() if config.recipe == "sac-ladder" else [dataset_id]
        if not overwrite and all(find_minari(t) is not None for t in targets):
            print(f"suite {name}: {dataset_id} already collected")
            continue
        start = time.perf_counter()
        written += collect(config, dataset_id, overwrite=overwrite)
        print(f"suite {name}: {dataset_id} ({config.recipe}, {config.env}) took {time.perf_counter() - start:.0f}s")
    return written
