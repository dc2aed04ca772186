"""The exceptions the CLI turns into one line on stderr and an exit status: bad input (2), a stop on request
(130 / 143), divergence (3); and `read_json` / `read_toml`, where a damaged file becomes bad input."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any


class UserError(Exception):
    """Bad input (unknown env, missing checkpoint, impossible config); the message names the fix."""


class Stopped(Exception):
    """The run was asked to stop and wrote a checkpoint; the CLI exits with `code` (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class Diverged(Exception):
    """A loss, Q-value or parameter became non-finite at `step`; the CLI exits with status 3."""

    def __init__(self, step: int, quantity: str):
        super().__init__(f"diverged at step {step}: {quantity} is not finite; the last good checkpoint is kept "
                         "(lower the learning rates or the reward scale)")
        self.step, self.quantity = step, quantity


def read_json(path: Path, problem: Callable[[Any], str | None], remedy: str) -> Any:
    """The JSON in `path`, checked where it is read: unreadable bytes, or a value for which `problem` names what is
    wrong, are one UserError naming the file, what is wrong and `remedy`."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: unreadable {path.name} ({type(e).__name__}); {remedy}") from None
    wrong = problem(value)
    if wrong:
        raise UserError(f"{path}: {wrong}; {remedy}")
    return value


def read_toml(path: Path, text: str | None = None) -> dict[str, Any]:
    """The TOML table in `path` (or `text`, read from it elsewhere); a file that cannot be read, is not UTF-8 or is
    not TOML is one UserError naming the file."""
    try:
        return tomllib.loads(path.read_text() if text is None else text)
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path} ({type(e).__name__}: {getattr(e, 'strerror', None) or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path} is not valid TOML: {e}") from None
