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


def _owner(cls: type, name: str) -> type:
    """The class in `cls`'s MRO that declares field `name` last (where its docstring is written)."""
    declaring = (c for c in cls.__mro__ if name in c.__dict__.get("__annotations__", {}) and name in field_docs(c))
    return next(declaring, cls)


def _leaves(config: Any) -> list[tuple[tuple[str, ...], type, str, Any]]:
    """(path, owner class, field name, resolved type) of every non-dataclass field of a config instance."""
    cls = type(config)
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):  # the instance's class, so a field may hold one of several configs
            out += [((f.name, *path), owner, name, t) for path, owner, name, t in _leaves(value)]
        else:
            out.append(((f.name,), _owner(cls, f.name), f.name, hints[f.name]))
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
    for path, owner, name, kind in _leaves(config):
        default = _get(config, path)
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=default,
                            help=f"{field_docs(owner).get(name, '')} (default: {shown})", **_parser_for(kind))


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
