"""The learners, by the `algo` name a checkpoint records."""

from __future__ import annotations

from typing import Any

from wsrl.agents.cql import CQLAgent, CQLConfig
from wsrl.agents.iql import IQLAgent, IQLConfig
from wsrl.agents.sac import SACAgent, SACConfig

LEARNERS: dict[str, tuple[type, type]] = {
    "sac": (SACAgent, SACConfig),
    "cql": (CQLAgent, CQLConfig),
    "calql": (CQLAgent, CQLConfig),
    "iql": (IQLAgent, IQLConfig),
}


def agent_from_meta(meta: dict[str, Any], seed: int = 0) -> Any:
    """A freshly initialised agent of the kind and shapes a checkpoint's meta.json describes."""
    from wsrl.config import from_dict

    agent_cls, config_cls = LEARNERS[meta.get("algo", "sac")]
    return agent_cls.create(from_dict(config_cls, meta["agent_config"]), meta["obs_dim"], meta["action_dim"], seed)
