"""Fine-tuning methods and baselines as presets over the same online learner (docs/method.md §5).

A method transforms a family preset's OnlineConfig; command-line flags are applied after it, so any of
its settings can still be changed (e.g. `--method rlpd --offline-ratio 0.25`), and flags of the parts a
method does not use are refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from wsrl.config import ContinuedConfig, JSRLConfig, OnlineConfig, RetentionConfig
from wsrl.errors import UserError


@dataclass(frozen=True)
class Method:
    """How a method changes the preset, and whether it starts from a pre-trained checkpoint."""

    about: str
    from_checkpoint: bool
    apply: Callable[[OnlineConfig], OnlineConfig]


def _rlpd(config: OnlineConfig) -> OnlineConfig:
    """RLPD: 10 critics, subset 2 without replacement, mean over critics for the actor, LayerNorm in the critic
    only, entropy backup, target entropy -|A|/2, lr 3e-4, UTD 20, 5000 uniform-random steps first, every
    minibatch half offline and half online; the plain one-action backup (max-target backups are WSRL's, on AntMaze);
    as RLPD's own code, one value head per critic, no last-hidden init scale, and only the updated network's
    optimiser steps."""
    agent = dataclasses.replace(
        config.agent, num_critics=10, critic_subset=2, subset_with_replacement=False, actor_critic_reduction="mean",
        actor_layer_norm=False, critic_layer_norm=True, entropy_backup=True, target_entropy_per_dim=-0.5,
        actor_lr=3e-4, critic_lr=3e-4, temperature_lr=3e-4, utd=20, batch_size=256, max_target_backup=False,
        shared_value_head=False, last_hidden_init_scale=None, step_all_optimizers=False)
    return dataclasses.replace(config, warmup_steps=5000, warmup_policy="random",
                               retention=RetentionConfig("mix", offline_ratio=0.5), agent=agent)


def _continued(algo: str, retain: bool = False, utd: int = 0) -> Callable[[OnlineConfig], OnlineConfig]:
    """The offline learner `algo` continued online with its own loss, no warmup (and optionally retention)."""
    return lambda c: dataclasses.replace(c, agent=ContinuedConfig(algo, utd), warmup_steps=0,
                                         retention=RetentionConfig() if retain else None)


METHODS: dict[str, Method] = {
    "wsrl": Method("WSRL: warmup with the frozen policy, then ensemble SAC, no offline data", True, lambda c: c),
    "wsrl-no-warmup": Method("WSRL without warmup (ablation)", True,
                             lambda c: dataclasses.replace(c, warmup_steps=0)),
    "wsrl-random-warmup": Method("WSRL with uniform random warmup actions (ablation)", True,
                                 lambda c: dataclasses.replace(c, warmup_policy="random")),
    "wsrl-retain": Method("WSRL plus retained offline data mixed into every minibatch (ablation)", True,
                          lambda c: dataclasses.replace(c, retention=RetentionConfig())),
    "calql": Method("Cal-QL continued online with its own loss, no offline data, no warmup", True, _continued("calql")),
    "cql": Method("CQL continued online with its own loss, no offline data, no warmup", True, _continued("cql")),
    "iql": Method("IQL continued online with its own loss, no offline data, no warmup", True, _continued("iql")),
    "calql-retain": Method("Cal-QL continued online, every minibatch mixing offline data (--offline-ratio)", True,
                           _continued("calql", retain=True)),
    "cql-retain": Method("CQL continued online, every minibatch mixing offline data (--offline-ratio)", True,
                         _continued("cql", retain=True)),
    "iql-retain": Method("IQL continued online, every minibatch mixing offline data (--offline-ratio)", True,
                         _continued("iql", retain=True)),
    "calql-ensemble-utd": Method("Cal-QL with its 10-critic ensemble at UTD 4, retaining offline data", True,
                                 _continued("calql", retain=True, utd=4)),
    "jsrl": Method("JSRL: the pre-trained policy guides the first h steps of each episode, h shrinking on a "
                   "curriculum; the SAC learner starts from scratch", True,
                   lambda c: dataclasses.replace(c, jsrl=JSRLConfig(), warmup_steps=0)),
    "sac-fast": Method("the WSRL online learner from random initialisation, no offline data", False, lambda c: c),
    "rlpd": Method("RLPD: SAC from scratch with symmetric offline/online sampling", False, _rlpd),
}


def method(name: str, command: str) -> Method:
    """The named method, checked against the command that runs it (finetune needs a checkpoint, train not)."""
    if name not in METHODS:
        raise UserError(f"unknown --method {name!r}; choose one of {', '.join(METHODS)}")
    chosen = METHODS[name]
    if chosen.from_checkpoint and command == "train":
        raise UserError(f"--method {name} fine-tunes a pre-trained checkpoint: use `wsrl finetune --from PATH`")
    if not chosen.from_checkpoint and command == "finetune":
        raise UserError(f"--method {name} starts from scratch: use `wsrl train --method {name}`")
    return chosen
