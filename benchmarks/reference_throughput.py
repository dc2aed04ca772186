"""Update throughput of other codebases' learners on the shapes `throughput.py` measures ours on, for side-by-side
ratios on one host.

Standalone: it never imports wsrl (the reference WSRL package is also called `wsrl`), so it runs in the other
codebase's own scratch venv, outside this repository (`benchmarks/side_by_side.sh` builds those venvs and runs this
script interleaved with `throughput.py`). Nothing of the other codebases is copied here; they are imported from the
checkout you name.

  reference WSRL (github.com/zhouzypaul/wsrl, JAX/Flax, its pinned jax 0.4.20):
      ref/bin/python benchmarks/reference_throughput.py wsrl-ref --code DIR --hidden 256 --layers 2
  CORL's Cal-QL (github.com/tinkoff-ai/CORL algorithms/finetune/cal_ql.py, PyTorch; its widths are fixed at 256):
      corl/bin/python benchmarks/reference_throughput.py corl --code cal_ql.py --layers 2

Each line: `RESULT <name> <updates per second>`, with the name `throughput.py` prints for the same configuration.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import types

import numpy as np

OBS_DIM, ACTION_DIM = 17, 6  # the shapes throughput.py uses
BATCH = 256


def random_batch(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"observations": rng.normal(size=(size, OBS_DIM)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (size, ACTION_DIM)).astype(np.float32),
            "rewards": rng.normal(size=size).astype(np.float32),
            "next_observations": rng.normal(size=(size, OBS_DIM)).astype(np.float32),
            "masks": np.ones(size, np.float32),
            "dones": np.zeros(size, np.float32),
            "mc_returns": rng.normal(size=size).astype(np.float32)}


def rate(step, seconds: float, sync=lambda out: None) -> float:
    """Calls of `step()` per second over `seconds`, after three warm-up calls (the reference's jitted update compiles
    again on its second call, on the agent its first call returned); `sync(out)` waits for the last result."""
    for _ in range(3):
        sync(out := step())
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        out = step()
        count += 1
    sync(out)
    return count / (time.perf_counter() - start)


def wsrl_ref(code: str, hidden: int, layers: int, seconds: float) -> None:
    """The reference code's SAC agent with its WSRL config (10 critics, subset 2, LayerNorm) stepped by its
    `update_high_utd` (UTD 4, 1024 rows), and its Cal-QL agent made like our pre-training presets' (10 critics,
    subset 2, LayerNorm MLPs) stepped by `update` (256 rows)."""
    sys.path.insert(0, code)
    import jax
    from experiments.configs.train_config import get_config
    from wsrl.agents.calql import CalQLAgent

    from wsrl.agents.sac import SACAgent

    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()})", flush=True)

    def kwargs(structure: str) -> dict:
        agent_kwargs = get_config(structure)["agent_kwargs"].to_dict()
        agent_kwargs["critic_network_kwargs"]["hidden_dims"] = [hidden] * layers
        agent_kwargs["policy_network_kwargs"]["hidden_dims"] = [hidden] * 2
        agent_kwargs["critic_ensemble_size"], agent_kwargs["critic_subsample_size"] = 10, 2
        for net in ("critic_network_kwargs", "policy_network_kwargs"):  # our pre-training presets' LayerNorm MLPs
            agent_kwargs[net]["use_layer_norm"] = True
        return agent_kwargs

    def run(name: str, agent_cls, structure: str, size: int, update) -> None:
        batch = jax.device_put(random_batch(size))
        cql = {"online_cql_alpha"}  # a finetune.py flag stored in the config, not an agent argument
        agent = agent_cls.create(rng=jax.random.PRNGKey(0), observations=batch["observations"][:1],
                                 actions=batch["actions"][:1], encoder_def=None,
                                 **{k: v for k, v in kwargs(structure).items() if k not in cql})
        state = {"agent": agent}

        def step():
            state["agent"], info = update(state["agent"], batch)
            return info

        print(f"RESULT {name} {rate(step, seconds, jax.block_until_ready):.3f}", flush=True)

    run("WSRL online (10 critics, UTD 4 x 256)", SACAgent, "locomotion_wsrl", 4 * BATCH,
        lambda agent, batch: agent.update_high_utd(batch, utd_ratio=4))
    run("Cal-QL offline (10 critics)", CalQLAgent, "locomotion_cql", BATCH, lambda agent, batch: agent.update(batch))


def corl(code: str, layers: int, seconds: float) -> None:
    """CORL's Cal-QL trainer as its `train()` builds it (2 critics, actor 3x256, critics `layers` x 256, Adam),
    stepped by `CalQL.train` on a batch of 256 on the CPU."""
    for name in ("d4rl", "gym", "wandb", "pyrallis"):  # imported at the top of the file, unused by the trainer
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["pyrallis"].wrap = lambda *a, **k: (lambda f: f)
    sys.modules["gym"].Env = object  # only in type hints
    spec = importlib.util.spec_from_file_location("corl_cal_ql", code)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    torch.manual_seed(0)
    config = module.TrainConfig(device="cpu", q_n_hidden_layers=layers)
    critics = [module.FullyConnectedQFunction(OBS_DIM, ACTION_DIM, config.orthogonal_init, layers)
               for _ in range(2)]
    actor = module.TanhGaussianPolicy(OBS_DIM, ACTION_DIM, max_action=1.0, log_std_multiplier=1.0,
                                      orthogonal_init=config.orthogonal_init)
    trainer = module.CalQL(
        critic_1=critics[0], critic_2=critics[1],
        critic_1_optimizer=torch.optim.Adam(critics[0].parameters(), config.qf_lr),
        critic_2_optimizer=torch.optim.Adam(critics[1].parameters(), config.qf_lr),
        actor=actor, actor_optimizer=torch.optim.Adam(actor.parameters(), config.policy_lr),
        target_entropy=-float(ACTION_DIM), discount=config.discount, alpha_multiplier=config.alpha_multiplier,
        use_automatic_entropy_tuning=config.use_automatic_entropy_tuning, backup_entropy=config.backup_entropy,
        policy_lr=config.policy_lr, qf_lr=config.qf_lr, soft_target_update_rate=config.soft_target_update_rate,
        bc_steps=config.bc_steps, target_update_period=config.target_update_period, cql_n_actions=config.cql_n_actions,
        cql_importance_sample=config.cql_importance_sample, cql_lagrange=config.cql_lagrange,
        cql_target_action_gap=config.cql_target_action_gap, cql_temp=config.cql_temp, cql_alpha=config.cql_alpha,
        cql_max_target_backup=config.cql_max_target_backup, cql_clip_diff_min=config.cql_clip_diff_min,
        cql_clip_diff_max=config.cql_clip_diff_max, device="cpu")
    b = random_batch(BATCH)
    batch = [torch.from_numpy(b[k]).reshape(BATCH, -1) if b[k].ndim == 1 else torch.from_numpy(b[k])
             for k in ("observations", "actions", "rewards", "next_observations", "dones", "mc_returns")]
    print(f"RESULT Cal-QL offline (2 critics, CORL shapes) {rate(lambda: trainer.train(batch), seconds):.3f}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("codebase", choices=["wsrl-ref", "corl"])
    parser.add_argument("--code", required=True, help="the reference checkout's root (wsrl-ref) or CORL's cal_ql.py")
    parser.add_argument("--hidden", type=int, default=256, help="network width (CORL: fixed at 256)")
    parser.add_argument("--layers", type=int, default=2, help="critic hidden layers")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.codebase == "wsrl-ref":
        wsrl_ref(args.code, args.hidden, args.layers, args.seconds)
    else:
        corl(args.code, args.layers, args.seconds)


if __name__ == "__main__":
    main()
