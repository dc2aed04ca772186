"""Compare two output trees of benchmarks/identity.sh file by file, leaving out wall-clock fields (issue 34 §5):

    .venv/bin/python benchmarks/identity_compare.py OUT_A OUT_B [--pair finetune-wsrl resumed-wsrl]

Prints one line per differing file and the count of identical ones; exit status 1 when any differ.
"""

import csv
import io
import json
import sys
from pathlib import Path

CLOCK = {"wall_time", "wall_time_s", "env_steps_per_s", "metrics_bytes"}  # metrics_bytes counts the clock's digits
SKIP = {"log.txt", "COMMIT", "config.json", "curves.png"}  # config.json records the command line with its paths


def normalised(path: Path) -> bytes:
    if path.name == "metrics.csv":
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        return json.dumps([{k: v for k, v in row.items() if k not in CLOCK and v != ""} for row in rows]).encode()
    if path.suffix == ".json":
        return json.dumps(_drop_clock(json.loads(path.read_text())), sort_keys=True).encode()
    return path.read_bytes()


def _drop_clock(value):
    if isinstance(value, dict):
        return {k: _drop_clock(v) for k, v in value.items() if k not in CLOCK and k != "learning_curve"}
    return [_drop_clock(v) for v in value] if isinstance(value, list) else value


def files(root: Path, under: str = "") -> dict[str, Path]:
    base = root / under
    return {str(p.relative_to(base)): p for p in sorted(base.rglob("*"))
            if p.is_file() and p.name not in SKIP and "tensorboard" not in p.parts and "minari" not in p.parts}


def compare(a: dict[str, Path], b: dict[str, Path]) -> list[str]:
    problems = [f"only in one tree: {name}" for name in sorted(set(a) ^ set(b))]
    problems += [f"differs: {name}" for name in sorted(set(a) & set(b)) if normalised(a[name]) != normalised(b[name])]
    return problems


def main() -> None:
    args = sys.argv[1:]
    a, b = Path(args[0]), Path(args[1])
    problems = compare(files(a), files(b))
    print(f"{a} vs {b}: {len(set(files(a)) & set(files(b))) - len(problems)} files identical, {len(problems)} not")
    if "--pair" in args:  # two runs of one tree that must agree on what both wrote (a resumed run vs. an unbroken one)
        x, y = args[args.index("--pair") + 1:][:2]
        fx, fy = files(a, x), files(a, y)
        shared = {k: fx[k] for k in set(fx) & set(fy) if not k.endswith("loop.json")}
        pair = compare(shared, {k: fy[k] for k in shared})
        print(f"{x} vs {y} in {a}: {len(shared) - len(pair)} shared files identical, {len(pair)} not")
        problems += pair
    for line in problems:
        print("  " + line)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
