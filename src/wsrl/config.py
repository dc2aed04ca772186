"""Frozen config dataclasses <-> command-line flags and JSON, with the field docstrings as help text.

Nested dataclass fields are flattened: every leaf field becomes one `--flag-name`, so the names of all
leaves of a config must be unique.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import types
import typing
from functools import cache
from typing import Any


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass (its help text)."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)):
            docs[node.target.id] = " ".join(str(following.value.value).split())
    return docs


def _leaves(cls: type) -> list[tuple[tuple[str, ...], Any, type]]:
    """(path, field, resolved type) of every non-dataclass field, depth first."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            out += [((f.name, *path), leaf, t) for path, leaf, t in _leaves(kind)]
        else:
            out.append(((f.name,), (cls, f), kind))
    return out


def _get(config: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        config = getattr(config, name)
    return config


def _parser_for(kind: Any) -> dict[str, Any]:
    """argparse keyword arguments for one field type."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin in (types.UnionType, typing.Union) and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        return {"type": lambda text: None if text.lower() == "none" else inner(text), "metavar": inner.__name__}
    if origin is tuple:
        return {"type": args[0], "nargs": "+", "metavar": args[0].__name__.upper()}
    if origin is typing.Literal:
        return {"type": type(args[0]), "choices": list(args)}
    return {"type": kind}


def add_config_arguments(parser: argparse.ArgumentParser, config: Any) -> None:
    """One flag per leaf field of `config`'s dataclass, defaulting to `config`'s values."""
    for path, (owner, f), kind in _leaves(type(config)):
        default = _get(config, path)
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        parser.add_argument("--" + path[-1].replace("_", "-"), dest=path[-1], default=default,
                            help=f"{field_docs(owner).get(f.name, '')} (default: {shown})", **_parser_for(kind))


def config_from_arguments(config: Any, namespace: argparse.Namespace) -> Any:
    """`config` with every leaf replaced by the parsed flag value."""
    changes = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            changes[f.name] = config_from_arguments(value, namespace)
        else:
            parsed = getattr(namespace, f.name)
            changes[f.name] = tuple(parsed) if isinstance(value, tuple) else parsed
    return dataclasses.replace(config, **changes)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a (nested) config dataclass from `to_dict` output; lists become tuples."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if dataclasses.is_dataclass(hints[f.name]):
            value = from_dict(hints[f.name], value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)
