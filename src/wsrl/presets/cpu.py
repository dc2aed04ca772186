"""Reduced budgets: a family's recipe (docs/method.md §3) at a size a 2-core CPU runs in minutes.

`cpu` is the locomotion recipe, `cpu-maze` the AntMaze one (the paper's recipe for sparse goal-reaching:
Cal-QL with the Lagrange CQL multiplier, rewards x10 - 5, episodes ending at success, max-target backups), for
the PointMaze datasets of the cpu suite. Same algorithms and ensemble logic as the full recipes — pre-training
with a 10-critic ensemble sampling 2, WSRL with a frozen-policy warmup and UTD 4, batch 256, the same learning
rates, target entropy, CQL and reward settings — with these cuts, and nothing else changed:
- hidden layers of 64 units instead of 256 (same depth; one locomotion WSRL update: 0.46 GFLOP instead of 5.1);
- 5k offline gradient steps, and 10k online environment steps;
- a warmup of K = 2000 steps instead of 5000, so that it ends well after the first update an un-warmed agent makes
  (at UTD x batch = 1024 steps);
- evaluation every 1000 steps with 5 episodes;
- `cpu-maze` acts in PointMaze_UMaze-v3 by default (`wsrl compare` and `finetune --from` use the dataset's or
  the checkpoint's env anyway).
They are the budgets of the comparisons in docs/reproduce.md §2 (`wsrl compare --preset cpu|cpu-maze`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import ModuleType
from typing import TypeVar

from wsrl.config import OfflineConfig, OnlineConfig
from wsrl.presets import antmaze, locomotion

WIDTH = 64
AgentConfig = TypeVar("AgentConfig")


@dataclass(frozen=True)
class Reduced:
    """`family`'s recipe with the cuts above."""

    family: ModuleType
    env: str | None = None  # the default environment, if not the family's

    @property
    def DEFAULT_ALGO(self) -> str:  # noqa: N802 - the name every preset module defines
        return self.family.DEFAULT_ALGO

    def narrow(self, agent: AgentConfig) -> AgentConfig:
        """The agent config with every hidden layer WIDTH wide (depths kept)."""
        return dataclasses.replace(agent, critic_hidden_dims=(WIDTH,) * len(agent.critic_hidden_dims),
                                   actor_hidden_dims=(WIDTH,) * len(agent.actor_hidden_dims))

    def offline(self, algo: str | None = None) -> OfflineConfig:
        config = self.family.offline(algo or self.DEFAULT_ALGO)
        return dataclasses.replace(config, steps=5000, eval_every=1000, eval_episodes=5,
                                   agent=self.narrow(config.agent))

    def online(self) -> OnlineConfig:
        config = self.family.online()
        return dataclasses.replace(config, env=self.env or config.env, steps=10_000, warmup_steps=2000,
                                   eval_every=1000, eval_episodes=5, log_every=500, agent=self.narrow(config.agent))


cpu = Reduced(locomotion)
cpu_maze = Reduced(antmaze, env="PointMaze_UMaze-v3")
