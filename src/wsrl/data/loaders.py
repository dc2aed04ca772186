"""Read offline datasets: Minari directories (by id or path) and D4RL-style hdf5 files (docs/method.md §7)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wsrl.data.transitions import Episode, Transitions, check_layout, from_episodes
from wsrl.envs import flatten_observation, normalized_score
from wsrl.errors import UserError


@dataclass
class RawDataset:
    """Episodes plus what the file says about itself."""

    episodes: list[Episode]
    source: str
    env_id: str | None = None
    reference: tuple[float, float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    successes: list[np.ndarray] | None = None
    unit_actions: bool = False
    """Whether the actions are already the agents' [-1, 1] (a Minari file, mapped by the action space it stores);
    otherwise they are in the env's own units (`to_unit_actions`)."""


def minari_root() -> Path:
    return Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets"))


def find_minari(id_or_path: str) -> Path | None:
    """The directory holding data/main_data.hdf5 for a Minari id or path, or None."""
    for candidate in (Path(id_or_path), minari_root() / id_or_path):
        if (candidate / "data" / "main_data.hdf5").is_file():
            return candidate
    return None


def _read(group: h5py.Group | h5py.Dataset) -> Any:
    if isinstance(group, h5py.Group):
        return {k: _read(group[k]) for k in group}
    return group[()]


def read_minari(directory: Path) -> RawDataset:
    """Episodes of a Minari dataset directory, read straight from its hdf5 file."""
    source = f"Minari dataset {directory}"
    meta_path = directory / "data" / "metadata.json"
    metadata = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    episodes, successes = [], []
    try:
        with h5py.File(directory / "data" / "main_data.hdf5", "r") as f:
            names = sorted((k for k in f if k.startswith("episode_")), key=lambda k: int(k.split("_")[1]))
            for name in names:
                g = f[name]
                episodes.append(Episode(
                    observations=flatten_observation(_read(g["observations"])),
                    actions=np.asarray(g["actions"][()], np.float32),
                    rewards=np.asarray(g["rewards"][()], np.float32).reshape(-1),
                    terminations=np.asarray(g["terminations"][()], bool).reshape(-1),
                    truncations=np.asarray(g["truncations"][()], bool).reshape(-1),
                ))
                infos = g.get("infos")
                success = None
                if infos is not None and "success" in infos:
                    success = np.asarray(infos["success"][()], bool).reshape(-1)
                    success = success[-len(episodes[-1]):]  # Minari also records the reset's info first
                successes.append(success)
    except (OSError, KeyError) as e:
        raise UserError(f"{source}: corrupt or truncated hdf5 ({e}); regenerate it with `wsrl collect`") from None
    except (ValueError, TypeError) as e:  # e.g. an array that is not numbers
        raise UserError(f"{source}: episode {len(episodes)} cannot be read as numbers ({e}); the file is damaged or "
                        "not in Minari layout") from None
    check_layout(episodes, source)
    action_space = metadata.get("action_space")
    if isinstance(action_space, str):  # datasets store actions in the env's units; the agents act in [-1, 1]
        space = json.loads(action_space)
        low, high = (np.asarray(space[k], np.float32) for k in ("low", "high"))
        if not (np.allclose(low, -1.0) and np.allclose(high, 1.0)):
            episodes = [dataclasses.replace(e, actions=2.0 * (e.actions - low) / (high - low) - 1.0) for e in episodes]
    env_spec = metadata.get("env_spec")
    env_id = json.loads(env_spec).get("id") if isinstance(env_spec, str) else None
    reference = None
    if metadata.get("ref_min_score") is not None and metadata.get("ref_max_score") is not None:
        reference = (float(metadata["ref_min_score"]), float(metadata["ref_max_score"]))
    return RawDataset(episodes, source, env_id, reference, metadata,
                      successes if all(s is not None for s in successes) and successes else None,
                      unit_actions=isinstance(action_space, str))


def read_d4rl(path: Path) -> RawDataset:
    """Episodes of a flat D4RL hdf5 file: boundaries at terminals, timeouts and next-observation jumps.

    Without next_observations, the last transition of a time-limit-cut episode has no successor and
    is dropped (the next stored observation belongs to the following episode).
    """
    source = f"D4RL file {path}"
    try:
        with h5py.File(path, "r") as f:
            data = {k: f[k][()] for k in ("observations", "actions", "rewards", "terminals", "timeouts",
                                          "next_observations") if k in f}
    except OSError as e:
        raise UserError(f"{source}: corrupt or truncated hdf5 ({e})") from None
    for key in ("observations", "actions", "rewards", "terminals"):
        if key not in data:
            raise UserError(f"{source}: missing dataset '{key}'; not a D4RL-style file")
    try:
        episodes = episodes_from_flat(data)
    except (ValueError, TypeError, IndexError) as e:  # arrays that are not numbers, or of lengths that differ
        raise UserError(f"{source}: its arrays do not fit together ({e}); the file is damaged or not D4RL-style") \
            from None
    check_layout(episodes, source)
    return RawDataset(episodes, source)


def episodes_from_flat(data: dict[str, np.ndarray]) -> list[Episode]:
    """Split flat transition arrays (D4RL layout: observations, actions, rewards, terminals, optional timeouts
    and next_observations) into episodes."""
    obs = np.asarray(data["observations"], np.float32)
    n = len(obs)
    terminals = np.asarray(data["terminals"], bool).reshape(-1)
    timeouts = np.asarray(data.get("timeouts", np.zeros(n)), bool).reshape(-1)
    next_obs = data.get("next_observations")
    episodes, start = [], 0
    for i in range(n):
        jump = next_obs is not None and i + 1 < n and not np.array_equal(next_obs[i], obs[i + 1])
        last = i == n - 1
        if not (terminals[i] or timeouts[i] or jump or last):
            continue
        end = i + 1
        if next_obs is not None:
            observations = np.concatenate([obs[start:end], np.asarray(next_obs[i:i + 1], np.float32)])
        elif terminals[i]:
            # The successor of a terminal state is never used (mask 0): repeat the state.
            observations = np.concatenate([obs[start:end], obs[i:i + 1]])
        else:
            end = i  # time-limit cut (or file end) without next_observations: drop the last transition
            observations = obs[start:i + 1]
        if end > start:
            truncations = np.zeros(end - start, bool)
            truncations[-1] = not terminals[end - 1]
            episodes.append(Episode(
                observations=observations,
                actions=np.asarray(data["actions"][start:end], np.float32),
                rewards=np.asarray(data["rewards"][start:end], np.float32).reshape(-1),
                terminations=terminals[start:end].copy(),
                truncations=truncations,
            ))
        start = i + 1
    return episodes


def read_dataset(id_or_path: str) -> RawDataset:
    """A Minari id / directory or a D4RL hdf5 file; a clear error naming where it looked otherwise."""
    path = Path(id_or_path)
    if path.is_file():
        return read_d4rl(path)
    directory = find_minari(id_or_path)
    if directory is not None:
        return read_minari(directory)
    raise UserError(f"dataset {id_or_path!r} not found: no file of that name and no "
                    f"{minari_root() / id_or_path}/data/main_data.hdf5 (Minari root from $MINARI_DATASETS_PATH or "
                    "~/.minari/datasets); create one with `wsrl collect`")


REMOTE_HOSTS = {"hf": "huggingface.co", "gcp": "storage.googleapis.com"}


def download(dataset_id: str) -> Path:
    """Fetch a Minari dataset (e.g. D4RL/antmaze/large-diverse-v1) with Minari's own API into the Minari root; a
    dataset already there is kept. Without a network, one error naming the alternatives."""
    local_id = dataset_id.split("://", 1)[1].split("/", 1)[1] if "://" in dataset_id else dataset_id
    directory = find_minari(local_id)
    if directory is not None:
        return directory
    import minari
    from minari.storage.remotes import DEFAULT_REMOTE

    remote = dataset_id.split("/", 1)[0] if "://" in dataset_id else os.environ.get("MINARI_REMOTE", DEFAULT_REMOTE)
    host = REMOTE_HOSTS.get(remote.split("://", 1)[0], "")
    offline = (f"cannot download {dataset_id}: no network reaches Minari's remote {remote}" + " ({})" +
               f"; put the dataset's files under {minari_root() / local_id}/ (from a machine with a network: "
               "`wsrl data download ID` there, then copy), or make a dataset with `wsrl collect`")
    if host:  # fail in a second rather than after Minari's client retried for half a minute
        try:
            socket.create_connection((host, 443), timeout=10).close()
        except OSError as e:
            raise UserError(offline.format(e.strerror or e)) from None
    target = minari_root() / local_id
    existed = target.exists()
    try:
        minari.download_dataset(dataset_id)
    except Exception as e:
        if target.exists() and not existed:  # nothing half-downloaded stays
            shutil.rmtree(target)
        if isinstance(e, ImportError):  # the remote's client library
            raise UserError(f"downloading from {remote} needs a package Minari names: {e}") from None
        if isinstance(e, ValueError):  # no such dataset, or a Minari version that cannot read it
            raise UserError(f"cannot download {dataset_id}: {e}") from None
        raise UserError(offline.format(f"{type(e).__name__}: {e}")) from None
    directory = find_minari(local_id)
    if directory is None:
        raise UserError(f"Minari downloaded {dataset_id} but no {target}/data/main_data.hdf5 appeared; check "
                        "$MINARI_DATASETS_PATH")
    return directory


def describe(raw: RawDataset) -> dict[str, Any]:
    """What `wsrl data info` prints: size, raw episode returns, normalised-score range, spaces."""
    returns = np.array([float(e.rewards.sum()) for e in raw.episodes]) if raw.episodes else np.zeros(1)
    info: dict[str, Any] = {
        "source": raw.source,
        "env": raw.env_id or "unknown",
        "episodes": len(raw.episodes),
        "transitions": sum(len(e) for e in raw.episodes),
        "observation dim": raw.episodes[0].observations.shape[-1] if raw.episodes else "-",
        "action dim": raw.episodes[0].actions.shape[-1] if raw.episodes else "-",
        "terminations": int(sum(e.terminations.sum() for e in raw.episodes)),
        "episode return": f"mean {returns.mean():.2f}  std {returns.std():.2f}  min {returns.min():.2f}  "
                          f"max {returns.max():.2f}",
    }
    if raw.successes is not None:
        info["success rate"] = f"{np.mean([s.any() for s in raw.successes]):.3f}"
    low, mean, high = (normalized_score(raw.env_id or "", float(r), raw.reference)
                       for r in (returns.min(), returns.mean(), returns.max()))
    if mean is not None:
        info["normalised score"] = f"{low:.1f} .. {high:.1f} (mean {mean:.1f})"
    return info


def to_unit_actions(raw: RawDataset, space: Any | None) -> RawDataset:
    """The dataset with actions in the agents' [-1, 1]: actions in the env's own units are mapped by the bounds of
    its action space (`space`, a Box; None: no env known, so the data must already lie in [-1, 1]). Actions beyond
    the bounds are refused with their count and range, never clipped silently."""
    if raw.unit_actions or not raw.episodes:
        return raw
    actions = np.concatenate([e.actions for e in raw.episodes])
    low, high = (np.full(actions.shape[1], -1.0), np.full(actions.shape[1], 1.0)) if space is None else (
        np.asarray(space.low, np.float64), np.asarray(space.high, np.float64))
    slack = 1e-5 * (high - low)
    outside = (actions < low - slack) | (actions > high + slack)
    if outside.any():
        bounds = "[-1, 1]" if space is None else f"the env's action bounds [{low.min():g}, {high.max():g}]"
        fix = ("give the env the data was logged in (--env / env=), whose action bounds map it" if space is None
               else "the data was not logged in this env's units")
        raise UserError(f"{raw.source}: {int(outside.sum())} of {outside.size} action entries lie outside {bounds} "
                        f"(range {actions.min():.4g} .. {actions.max():.4g}); {fix}")
    if space is not None and not (np.allclose(low, -1.0) and np.allclose(high, 1.0)):
        scale = lambda a: (2.0 * (a - low) / (high - low) - 1.0).astype(np.float32)  # noqa: E731
        raw = dataclasses.replace(raw, episodes=[dataclasses.replace(e, actions=scale(e.actions))
                                                 for e in raw.episodes])
    return dataclasses.replace(raw, unit_actions=True)


def end_at_success(episode: Episode, success: np.ndarray) -> list[Episode]:
    """The episode cut after each step that reaches the goal, each piece ending there in a true terminal: the data
    of a task whose episodes end at success (as D4RL's AntMaze files mark their goal steps terminal)."""
    ends = np.flatnonzero(success[:len(episode)]) + 1
    pieces, start = [], 0
    for end in [*ends, len(episode)]:
        if end > start:
            terminations = episode.terminations[start:end].copy()
            terminations[-1] |= end in ends
            truncations = episode.truncations[start:end] & ~terminations
            pieces.append(Episode(episode.observations[start:end + 1], episode.actions[start:end],
                                  episode.rewards[start:end], terminations, truncations))
        start = end
    return pieces


def task_transitions(raw: RawDataset, reward_scale: float, reward_bias: float, gamma: float,
                     binary_reward: bool = False, sparse_failure_reward: float | None = None,
                     terminate_on_success: bool = False, action_limit: float | None = 0.99999) -> Transitions:
    """A dataset's transitions under a task's reward convention: the one place it is applied to data.

    `binary_reward` rebuilds rewards as -1 / 0 from the stored success flags; `sparse_failure_reward` is
    the raw failure reward of a sparse task (its all-failure episodes get r / (1 - gamma) as return-to-go);
    `terminate_on_success` ends an episode at each success step (where the dataset stores success flags).
    """
    episodes = raw.episodes
    if binary_reward:
        if raw.successes is None:
            raise UserError(f"{raw.source} stores no success flags (infos/success); binary rewards need them")
        episodes = [dataclasses.replace(e, rewards=np.where(s, 0.0, -1.0).astype(np.float32))
                    for e, s in zip(episodes, raw.successes, strict=True)]
    if terminate_on_success and raw.successes is not None:
        episodes = [piece for e, s in zip(episodes, raw.successes, strict=True) for piece in end_at_success(e, s)]
    failure = None if sparse_failure_reward is None else reward_scale * sparse_failure_reward + reward_bias
    return from_episodes(episodes, reward_scale, reward_bias, gamma, failure, action_limit, raw.source)
