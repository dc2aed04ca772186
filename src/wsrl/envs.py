"""Environment construction, the training-env reward transform, and D4RL normalised scores (docs/method.md §6)."""

from __future__ import annotations

import contextlib
import io
import re
import time
from typing import Any

import gymnasium as gym
import numpy as np

from wsrl.errors import UserError

# D4RL reference returns (min, max) per task family, docs/method.md §6.
REFERENCE_SCORES: dict[str, tuple[float, float]] = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
    "antmaze": (0.0, 1.0),
    "kitchen": (0.0, 4.0),
    "pen": (96.262799, 3076.8331017826877),
    "door": (-56.512833, 2880.5693087298737),
    "relocate": (-6.425911, 4233.877797728884),
    "hammer": (-274.856578, 12794.134825156867),
}


# Episode lengths of the D4RL datasets and the paper where the Gymnasium registration differs: gymnasium-robotics
# registers AdroitHandPen-v1 with 200 steps, D4RL / Minari pen data and Cal-QL's pen-binary use 100.
EPISODE_STEPS = {"pen": 100}


def task_family(env_id: str) -> str | None:
    """The REFERENCE_SCORES key of an env id ('Hopper-v5' -> 'hopper'), or None when unknown."""
    name = env_id.split("/")[-1].split("-")[0].lower()
    if name.startswith("antmaze"):
        return "antmaze"
    if name.startswith("frankakitchen") or name.startswith("kitchen"):
        return "kitchen"
    for part in ("pen", "door", "relocate", "hammer"):
        if name.startswith("adroithand" + part):
            return part
    return name if name in REFERENCE_SCORES else None


def normalized_score(env_id: str, episode_return: float,
                     reference: tuple[float, float] | None = None) -> float | None:
    """100 * (return - ref_min) / (ref_max - ref_min); `reference` (e.g. from Minari metadata) wins."""
    if reference is None:
        family = task_family(env_id)
        if family is None:
            return None
        reference = REFERENCE_SCORES[family]
    low, high = reference
    return 100.0 * (episode_return - low) / (high - low)


# Goal-dict observations are flattened in this order, by the dataset loaders and the env wrapper alike.
GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


def flatten_observation(obs: Any) -> np.ndarray:
    """A Box observation as is; a goal dict as the concatenation of GOAL_KEYS along the last axis.

    Franka Kitchen's goals are dicts of per-task targets that never change within a task set: only its
    'observation' entry is kept.
    """
    if not isinstance(obs, dict):
        return np.asarray(obs, np.float32)
    missing = [k for k in GOAL_KEYS if k not in obs]
    if missing:
        raise UserError(f"dict observation without {missing}; only goal dicts with keys {GOAL_KEYS} are supported")
    if isinstance(obs["desired_goal"], dict):
        return np.asarray(obs["observation"], np.float32)
    return np.concatenate([np.asarray(obs[k], np.float32) for k in GOAL_KEYS], axis=-1)


def success_flag(info: dict[str, Any]) -> bool | None:
    """Whether the task is solved at this step, or None for tasks without a notion of success."""
    for key in ("success", "is_success"):
        if key in info:
            return bool(info[key])
    if "tasks_to_complete" in info:  # Franka Kitchen: every task of the set done
        return len(info["tasks_to_complete"]) == 0
    return None


class FlatGoalObservation(gym.ObservationWrapper):
    """Goal-dict observations as one flat vector (see `flatten_observation`)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        size = flatten_observation(env.observation_space.sample()).shape[-1]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)

    def observation(self, observation: Any) -> np.ndarray:
        return flatten_observation(observation)


class SuccessTask(gym.Wrapper):
    """Optional binary reward (-1, or 0 on success) and termination at the first success."""

    def __init__(self, env: gym.Env, binary_reward: bool, terminate_on_success: bool):
        super().__init__(env)
        self.binary_reward, self.terminate_on_success = binary_reward, terminate_on_success

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        success = bool(success_flag(info))
        if self.binary_reward:
            reward = 0.0 if success else -1.0
        return obs, reward, terminated or (self.terminate_on_success and success), truncated, info


def binary_rewards(env: gym.Env) -> bool:
    """Whether `env`'s rewards are the binary -1 / 0 of `SuccessTask` rather than the task's own."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, SuccessTask) and env.binary_reward:
            return True
        env = env.env
    return False


class RewardTransform(gym.Wrapper):
    """r -> scale * r + bias on the training env only; the untransformed reward stays in info['raw_reward']."""

    def __init__(self, env: gym.Env, scale: float, bias: float):
        super().__init__(env)
        self.scale, self.bias = scale, bias

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "raw_reward": reward}
        return obs, self.scale * reward + self.bias, terminated, truncated, info


class RealTime(gym.Wrapper):
    """A simulated env that steps in real time, as hardware does: each `step` returns no earlier than one control
    period (1 / hz seconds) after the previous one returned, sleeping the rest of the period; a step that arrives
    late is not made up for. `periods` holds the seconds between consecutive steps of an episode (the jitter a
    controller sees). For trying a robot's loop (docs/robots.md) without the robot."""

    def __init__(self, env: gym.Env, hz: float):
        super().__init__(env)
        self.period = 1.0 / hz
        self.periods: list[float] = []
        self._last: float | None = None

    def reset(self, **kwargs: Any) -> Any:
        self._last = None
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        result = self.env.step(action)
        now = time.perf_counter()
        if self._last is not None:
            if now - self._last < self.period:
                time.sleep(self.period - (now - self._last))
                now = time.perf_counter()
            self.periods.append(now - self._last)
        self._last = now
        return result


def is_unit_box(space: gym.spaces.Box) -> bool:
    return bool(np.allclose(space.low, -1.0) and np.allclose(space.high, 1.0))


CALLABLE_NAMESPACE = "wsrl-callable"


def env_id(env: Any) -> str:
    """The id a run records for `env`: a Gymnasium id as it is; "package.module:attribute" (a module importable from
    the current directory, as `python -m` finds it) naming an env class or factory, registered under that string;
    a callable returning a gymnasium.Env (e.g. a class of the user's own script), registered for this process as
    "wsrl-callable/NAME" (config.json alone cannot recreate it: `resume` then needs the callable again)."""
    if isinstance(env, str):
        _gym_id(env)  # an entry point that does not import fails here, before anything is written
        return env
    if not callable(env):
        raise UserError(f"env must be a Gymnasium id, 'package.module:attribute' or a callable returning a "
                        f"gymnasium.Env, got {type(env).__name__}")
    qualname = getattr(env, "__qualname__", type(env).__name__)  # e.g. "run.<locals>.make" for a nested factory
    name = f"{CALLABLE_NAMESPACE}/{re.sub(r'[^A-Za-z0-9_-]', '_', qualname)}"
    gym.registry.pop(name, None)  # the newest definition of that callable wins
    gym.register(name, entry_point=env, disable_env_checker=True)
    return name


def _gym_id(env_id: str) -> str:
    """The registered id to make for `env_id`: itself, or for "package.module:attribute" the id its attribute names
    (a module that registers ids) or the id its env class / factory is registered under here."""
    if ":" not in env_id:
        _ensure_registered(env_id)
        return env_id
    import importlib
    import sys

    module_name, _, attribute = env_id.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # the current directory, as `python -m` would search it
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise UserError(f"--env {env_id}: cannot import {attribute!r} from {module_name!r} ({e}); give an importable "
                        "'package.module:attribute' (run from the directory that holds the package)") from None
    if isinstance(target, str):  # a module that registers ids on import, and the id to make
        return _gym_id(target)
    if not callable(target):
        raise UserError(f"--env {env_id}: {attribute} is a {type(target).__name__}, not an env class or factory")
    name = f"wsrl-entry/{module_name}.{attribute}"
    if name not in gym.registry:
        gym.register(name, entry_point=target, disable_env_checker=True)
    return name


def native_action_space(env: gym.Env) -> gym.spaces.Box:
    """The action space in the env's own units: the one `make_env`'s RescaleAction maps [-1, 1] onto."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.RescaleAction):
            return env.env.action_space
        env = env.env
    return env.action_space


def _ensure_registered(env_id: str) -> None:
    if env_id in gym.registry:
        return
    # Its import prints a notice about Adroit *Dense-v1 rewards to stderr; keep our stderr to errors only.
    with contextlib.redirect_stderr(io.StringIO()):
        import gymnasium_robotics  # registers AntMaze, PointMaze, Adroit, Kitchen

    gym.register_envs(gymnasium_robotics)


def make_env(env_id: str, reward_scale: float = 1.0, reward_bias: float = 0.0, binary_reward: bool = False,
             terminate_on_success: bool = False) -> gym.Env:
    """Make `env_id` with flat observations and actions in [-1, 1], plus the task's success rules (and the paper's
    episode length where it differs from the registration: EPISODE_STEPS).

    The reward transform (training env only) is added only when it is not the identity.
    """
    try:
        steps = EPISODE_STEPS.get(task_family(env_id) or "")
        env = gym.make(_gym_id(env_id), **({"max_episode_steps": steps} if steps else {}))
    except gym.error.Error as e:
        if env_id.startswith(CALLABLE_NAMESPACE + "/"):
            raise UserError(f"environment {env_id!r} was a Python callable of another process; pass it again "
                            "(`wsrl.resume(run, env=MyEnv)`)") from None
        raise UserError(f"unknown environment {env_id!r} ({e}); use a Gymnasium id such as Hopper-v5") from None
    if isinstance(env.observation_space, gym.spaces.Dict) and "desired_goal" in env.observation_space.spaces:
        env = FlatGoalObservation(env)
    if not isinstance(env.action_space, gym.spaces.Box) or not isinstance(env.observation_space, gym.spaces.Box):
        env.close()
        raise UserError(f"environment {env_id!r} needs Box observation and action spaces, it has "
                        f"{env.observation_space} and {env.action_space}")
    if not is_unit_box(env.action_space):
        unit = np.ones(env.action_space.shape, np.float32)
        env = gym.wrappers.RescaleAction(env, -unit, unit)
    if binary_reward or terminate_on_success:
        env = SuccessTask(env, binary_reward, terminate_on_success)
    if (reward_scale, reward_bias) != (1.0, 0.0):
        env = RewardTransform(env, reward_scale, reward_bias)
    return env


def space_dims(env: gym.Env) -> tuple[int, int]:
    """(observation dim, action dim) of a flat Box env."""
    return int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
