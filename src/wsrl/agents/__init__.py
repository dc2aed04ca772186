"""The learners, by the `algo` name a checkpoint records."""

from __future__ import annotations

from typing import Any

from wsrl.agents.common import Agent
from wsrl.agents.cql import CQLAgent
from wsrl.agents.iql import IQLAgent
from wsrl.agents.sac import SACAgent

LEARNERS: dict[str, type[Agent]] = {"sac": SACAgent, "cql": CQLAgent, "calql": CQLAgent, "iql": IQLAgent}


def agent_from_meta(meta: dict[str, Any], seed: int = 0) -> Agent:
    """A freshly initialised agent of the kind and shapes a checkpoint's meta.json describes."""
    from wsrl.config import from_dict

    agent_cls = LEARNERS[meta.get("algo", "sac")]
    return agent_cls.create(from_dict(agent_cls.config_class, meta["agent_config"]), meta["obs_dim"],
                            meta["action_dim"], seed)
