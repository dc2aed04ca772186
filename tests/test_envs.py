import gymnasium as gym
import numpy as np
import pytest

from wsrl.envs import (
    GOAL_KEYS,
    REFERENCE_SCORES,
    SuccessTask,
    flatten_observation,
    make_env,
    normalized_score,
    space_dims,
)
from wsrl.errors import UserError


class Countdown(gym.Env):
    """Reward 7 per step; success from step 3 on; the time limit is the caller's."""

    observation_space = gym.spaces.Box(-1, 1, (1,))
    action_space = gym.spaces.Box(-1, 1, (1,))

    def reset(self, seed=None, options=None):
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), 7.0, False, False, {"success": self.t >= 3}


def test_binary_reward_and_termination_on_success():
    env = SuccessTask(Countdown(), binary_reward=True, terminate_on_success=True)
    env.reset()
    steps = [env.step(np.zeros(1))[1:3] for _ in range(3)]
    assert steps == [(-1.0, False), (-1.0, False), (0.0, True)]
    plain = SuccessTask(Countdown(), binary_reward=False, terminate_on_success=False)
    plain.reset()
    assert [plain.step(np.zeros(1))[1:3] for _ in range(3)] == [(7.0, False)] * 3


def test_goal_maze_observations_are_flattened_like_datasets():
    env = make_env("PointMaze_UMaze-v3", terminate_on_success=True)  # registers gymnasium-robotics first
    raw = gym.make("PointMaze_UMaze-v3")
    obs_dict, _ = raw.reset(seed=3)
    obs, _ = env.reset(seed=3)
    assert space_dims(env) == (8, 2)
    np.testing.assert_allclose(obs, np.concatenate([obs_dict[k] for k in GOAL_KEYS]), rtol=1e-6)
    np.testing.assert_allclose(flatten_observation(obs_dict), obs)


def test_normalised_scores_use_the_d4rl_table_or_dataset_reference():
    assert normalized_score("Hopper-v5", 3234.3) == pytest.approx(100.0)
    assert normalized_score("Walker2d-v5", REFERENCE_SCORES["walker2d"][0]) == pytest.approx(0.0)
    assert normalized_score("AntMaze_Large_Diverse_GR-v4", 1.0) == pytest.approx(100.0)
    assert normalized_score("AdroitHandPen-v1", 96.262799) == pytest.approx(0.0)
    assert normalized_score("FrankaKitchen-v1", 2.0) == pytest.approx(50.0)
    assert normalized_score("Ant-v5", 0.0, reference=(0.0, 10.0)) == pytest.approx(0.0)
    assert normalized_score("CartPole-v1", 10.0) is None


def test_unknown_or_unsupported_envs_are_user_errors():
    with pytest.raises(UserError, match="unknown environment"):
        make_env("Hopperz-v5")
    with pytest.raises(UserError, match="Box observation and action spaces"):
        make_env("CartPole-v1")
