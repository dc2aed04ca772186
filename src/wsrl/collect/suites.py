"""Suites: TOML lists of datasets to collect, shipped with wsrl (`suites/*.toml`) or given by path."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from wsrl.collect.recipes import collect, ladder_ids
from wsrl.config import CollectConfig, from_dict
from wsrl.data.loaders import find_minari
from wsrl.errors import UserError, read_toml


def shipped_suites() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in resources.files("wsrl.collect").joinpath("suites").iterdir()
                  if p.name.endswith(".toml"))


def read_suite(name: str) -> list[tuple[str, CollectConfig]]:
    """A suite's datasets, (id, recipe config) in order, from NAME as a file path or a suite shipped with wsrl;
    checked where it is read (TOML, one [[dataset]] table per dataset with a string id, known keys of their types)."""
    if Path(name).is_file():
        raw = read_toml(Path(name))
    elif name in shipped_suites():
        raw = read_toml(Path(name), resources.files("wsrl.collect").joinpath("suites", f"{name}.toml").read_text())
    else:
        raise UserError(f"no suite {name!r}: neither a file nor one of the suites shipped with wsrl "
                        f"({', '.join(shipped_suites())})")
    entries = raw.get("dataset", [])
    if set(raw) - {"dataset"} or not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UserError(f"suite {name}: expected only [[dataset]] tables (id = \"...\", then collect's settings)")
    datasets = []
    for entry in entries:
        dataset_id = entry.get("id")
        if not isinstance(dataset_id, str) or not dataset_id:
            raise UserError(f"suite {name}: a [[dataset]] table has no string id = \"NAMESPACE/NAME-v0\"")
        try:
            datasets.append((dataset_id, from_dict(CollectConfig, {k: v for k, v in entry.items() if k != "id"})))
        except ValueError as e:
            raise UserError(f"suite {name}, dataset {dataset_id}: {e}") from None
    return datasets


def collect_suite(name: str, overwrite: bool = False, only: str | None = None) -> list[Path]:
    """Collect every dataset a suite lists (or only the one of id `only`), skipping those already present (so an
    interrupted suite resumes)."""
    datasets = read_suite(name)
    if only is not None:
        ids = [dataset_id for dataset_id, _ in datasets]
        if only not in ids:
            raise UserError(f"suite {name} has no dataset {only!r}; its ids: {', '.join(ids)}")
        datasets = [(dataset_id, config) for dataset_id, config in datasets if dataset_id == only]
    written = []
    for dataset_id, config in datasets:
        targets = ladder_ids(dataset_id).values() if config.recipe == "sac-ladder" else [dataset_id]
        if not overwrite and all(find_minari(t) is not None for t in targets):
            print(f"suite {name}: {dataset_id} already collected")
            continue
        start = time.perf_counter()
        written += collect(config, dataset_id, overwrite=overwrite)
        print(f"suite {name}: {dataset_id} ({config.recipe}, {config.env}) took {time.perf_counter() - start:.0f}s")
    return written
