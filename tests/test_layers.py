"""The layers of docs/architecture.md §1, kept by import-linter (imports inside functions included), and every module
of the package is in one of them."""

import re
import tomllib
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_every_module_sits_in_a_layer_and_the_layers_are_kept():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [layers] = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    named = {m.strip() for layer in layers for m in layer.split("|")}
    package = ROOT / "src" / "wsrl"
    modules = {f"wsrl.{p.relative_to(package).with_suffix('').parts[0]}" for p in package.rglob("*.py")
               if p.name != "__init__.py" or p.parent != package}
    assert modules == named, (modules - named, named - modules)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0
    # the architecture doc lists the same modules
    doc = (ROOT / "docs" / "architecture.md").read_text()
    section = doc[doc.index("## 1. Layers"):doc.index("## 2.")]
    listed = {f"wsrl.{name}" for name in re.findall(r"\b([a-z_]+)(?:\.py|/)", section)}
    assert modules <= listed, modules - listed
