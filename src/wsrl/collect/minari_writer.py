"""Write episodes as a Minari dataset, atomically (a temporary root, moved into place when complete)."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from unittest import mock

import gymnasium as gym
import numpy as np

from wsrl.data.loaders import minari_root
from wsrl.envs import REFERENCE_SCORES, task_family
from wsrl.errors import UserError


def write_minari(dataset_id: str, episodes: list[dict[str, np.ndarray]], env: gym.Env, env_id: str,
                 description: dict, overwrite: bool) -> Path:
    """Write `episodes` as Minari dataset `dataset_id` in the Minari root, atomically.

    Actions are stored in the env's own units (as Minari's recover_environment expects); the agents' [-1, 1]
    actions are mapped back by the loader.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    root = minari_root()
    target = root / dataset_id
    tmp_root = root / f".wsrl-tmp-{os.getpid()}"
    shutil.rmtree(tmp_root, ignore_errors=True)
    native = env.unwrapped.action_space
    to_native = lambda a: native.low + (a + 1.0) * 0.5 * (native.high - native.low)  # noqa: E731
    buffers = [EpisodeBuffer(id=i, observations=e["observations"], actions=to_native(e["actions"]).astype(np.float32),
                             rewards=list(e["rewards"]),
                             terminations=list(e["terminations"]), truncations=list(e["truncations"]),
                             infos={"success": e["success"]} if "success" in e else {})
               for i, e in enumerate(episodes)]
    family = task_family(env_id)
    reference = REFERENCE_SCORES.get(family) if family else None
    try:
        with warnings.catch_warnings(), mock.patch.dict(os.environ, {"MINARI_DATASETS_PATH": str(tmp_root)}):
            warnings.simplefilter("ignore")  # minari asks for author / permalink metadata we do not have
            minari.create_dataset_from_buffers(
                dataset_id, buffers, env=env_id, eval_env=env_id, algorithm_name=f"wsrl {description['recipe']}",
                observation_space=env.observation_space, action_space=native,
                ref_min_score=reference[0] if reference else None, ref_max_score=reference[1] if reference else None,
                description=json.dumps(description))
        if target.exists() and overwrite:
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_root / dataset_id, target)
    except ValueError as e:
        raise UserError(f"cannot write Minari dataset {dataset_id!r}: {e}") from None
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return target
