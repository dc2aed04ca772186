"""The reduced `cpu` budget: the locomotion recipe (METHOD.md §3) at a size a 2-core CPU runs in minutes.

Same algorithms and ensemble logic as `locomotion` — CQL (alpha 5, importance-sampled) or Cal-QL / IQL
pre-training, a 10-critic ensemble sampling 2, WSRL with a frozen-policy warmup and UTD 4, batch 256, the same
learning rates and target entropy — with these cuts, and nothing else changed:
- networks of 2x64 instead of 2x256 (one WSRL update: 0.46 GFLOP instead of 5.1, XLA's count);
- 5k offline gradient steps instead of 250k, and 10k online environment steps instead of 250k;
- a warmup of K = 2000 steps instead of 5000, so that it ends well after the first update an un-warmed agent makes
  (at UTD x batch = 1024 steps);
- evaluation every 1000 steps with 5 episodes.
It is the budget of the comparisons reported for issue 5 (`wsrl compare --preset cpu`).
"""

import dataclasses

from wsrl.presets import locomotion
from wsrl.train.offline import OfflineConfig
from wsrl.train.online import OnlineConfig

DEFAULT_ALGO = locomotion.DEFAULT_ALGO
NETWORKS = dict(critic_hidden_dims=(64, 64), actor_hidden_dims=(64, 64))


def offline(algo: str = DEFAULT_ALGO) -> OfflineConfig:
    config = locomotion.offline(algo)
    return dataclasses.replace(config, steps=5000, eval_every=1000, eval_episodes=5,
                               agent=dataclasses.replace(config.agent, **NETWORKS))


def online() -> OnlineConfig:
    config = locomotion.online()
    return dataclasses.replace(config, steps=10_000, warmup_steps=2000, eval_every=1000, eval_episodes=5,
                               log_every=500, agent=dataclasses.replace(config.agent, **NETWORKS))
