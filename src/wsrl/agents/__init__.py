"""The learners, registered by the `algo` name a checkpoint records, with what the loops ask of each.

Adding a learner is its module in this package plus one `LEARNERS` entry (and its line in the conformance test,
tests/test_agents.py, which refuses a registered learner without one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wsrl.agents.common import Agent
from wsrl.agents.cql import CQLAgent
from wsrl.agents.iql import IQLAgent
from wsrl.agents.sac import SACAgent


@dataclass(frozen=True)
class Learner:
    """A learner class and its properties, which the loops ask instead of comparing names."""

    agent: type[Agent]
    online_returns: bool = False  # its batches need Monte-Carlo returns-to-go online too (Cal-QL's lower bound)
    seeds_sac: bool = True  # its checkpoint can seed the SAC learner (a tanh-Gaussian actor, a Q ensemble)
    squashed_policy: bool = True  # its actor's action is tanh(mean) (what an exported policy computes)
    configure: Callable[[Any], Any] = lambda config: config  # the learner's config from the family's

    def create(self, config: Any, obs_dim: int, action_dim: int, seed: int) -> Agent:
        return self.agent.create(self.configure(config), obs_dim, action_dim, seed)


LEARNERS: dict[str, Learner] = {
    "sac": Learner(SACAgent),
    "cql": Learner(CQLAgent),
    "calql": Learner(CQLAgent, online_returns=True, configure=lambda c: dataclasses.replace(c, calql=True)),
    "iql": Learner(IQLAgent, seeds_sac=False, squashed_policy=False),
}


def agent_from_meta(meta: dict[str, Any], seed: int = 0) -> Agent:
    """A freshly initialised agent of the kind and shapes a checkpoint's meta.json describes."""
    from wsrl.config import from_dict

    learner = LEARNERS[meta.get("algo", "sac")]
    return learner.create(from_dict(learner.agent.config_class, meta["agent_config"]), meta["obs_dim"],
                          meta["action_dim"], seed)
