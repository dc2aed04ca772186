"""The DAPG release's formats, read without torch or mjrl, and the Adroit recipes on tiny stand-in files.

The stand-in policy pickle is written the way the release's were: an mjrl MLP pickled with torch 0.4, its tensors
old-format `torch.save` blobs. Fake modules named like mjrl's and torch's make `pickle` emit the same globals.
"""

import io
import json
import pickle
import struct
import sys
import types

import minari
import numpy as np
import pytest

from wsrl.cli import main
from wsrl.collect import adroit
from wsrl.collect.dapg import read_demos, read_policy
from wsrl.data.loaders import read_dataset, task_transitions
from wsrl.envs import make_env


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in attributes.items():
        value.__module__, value.__qualname__ = name, key
        setattr(module, key, value)
    return module


class _Storage:
    def __init__(self, values: np.ndarray):
        self.values = np.asarray(values, np.float32).ravel()

    def __reduce__(self):
        return sys.modules["torch.storage"]._load_from_bytes, (_torch_save(self.values),)


class _Tensor:
    def __init__(self, values, parameter: bool = False):
        self.values, self.parameter = np.asarray(values, np.float32), parameter

    def __reduce__(self):
        shape = self.values.shape
        strides = tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))
        rebuild = sys.modules["torch._utils"]
        tensor = (rebuild._rebuild_tensor_v2, (_Storage(self.values), 0, shape, strides, False, {}))
        if not self.parameter:
            return tensor
        return rebuild._rebuild_parameter, (_Tensor(self.values), True, {})


def _torch_save(values: np.ndarray) -> bytes:
    """One float storage in torch.save's pre-1.6 layout."""
    out = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, out, protocol=2)

    class Saver(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", sys.modules["torch"].FloatStorage, "key0", "cpu", len(values), None) \
                if obj is values else None

    Saver(out, protocol=2).dump(values)
    pickle.dump(["key0"], out, protocol=2)
    out.write(struct.pack("<q", len(values)) + values.astype("<f4").tobytes())
    return out.getvalue()


class _Object:
    def __init__(self, **state):
        self.__dict__.update(state)

    def __reduce__(self):
        return type(self), (), self.__dict__


@pytest.fixture
def fake_torch(monkeypatch):
    """Modules named like torch's and mjrl's, so that pickling stand-in objects writes the release's globals."""
    classes = {name: type(name, (_Object,), {}) for name in ("MLP", "FCNetwork", "ModuleList", "Linear")}
    modules = [
        _module("torch", FloatStorage=type("FloatStorage", (), {})),
        _module("torch.storage", _load_from_bytes=lambda b: b),
        _module("torch._utils", _rebuild_tensor_v2=lambda *a: a, _rebuild_parameter=lambda *a: a),
        _module("mjrl.policies.gaussian_mlp", MLP=classes["MLP"]),
        _module("mjrl.utils.fc_network", FCNetwork=classes["FCNetwork"]),
        _module("torch.nn.modules.container", ModuleList=classes["ModuleList"]),
        _module("torch.nn.modules.linear", Linear=classes["Linear"]),
    ]
    for module in modules:
        parts = module.__name__.split(".")
        for i in range(1, len(parts)):  # `pickle` imports the parent packages too
            if ".".join(parts[:i]) not in sys.modules:
                monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        monkeypatch.setitem(sys.modules, module.__name__, module)
    return classes


def write_policy(path, classes, sizes, seed=0):
    """A stand-in DAPG policy: an mjrl MLP over an FCNetwork with Linear layers of `sizes`; returns its numbers."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(o, i)).astype(np.float32) * 0.3 for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
    biases = [rng.normal(size=o).astype(np.float32) * 0.1 for o in sizes[1:]]
    layers = {str(k): classes["Linear"](_parameters={"weight": _Tensor(w, True), "bias": _Tensor(b, True)})
              for k, (w, b) in enumerate(zip(weights, biases, strict=True))}
    shifts = {k: rng.normal(size=n).astype(np.float32) for k, n in
              (("in_shift", sizes[0]), ("out_shift", sizes[-1]))}
    scales = {k: rng.uniform(0.5, 2.0, n).astype(np.float32) for k, n in (("in_scale", sizes[0]),
                                                                         ("out_scale", sizes[-1]))}
    model = classes["FCNetwork"](_modules={"fc_layers": classes["ModuleList"](_modules=layers)}, nonlinearity="tanh",
                                 **{k: _Tensor(v) for k, v in {**shifts, **scales}.items()})
    log_std = rng.normal(size=sizes[-1]).astype(np.float32) - 1.0
    with open(path, "wb") as f:
        pickle.dump(classes["MLP"](model=model, log_std=_Tensor(log_std, True), m=sizes[-1]), f, protocol=3)
    return weights, biases, shifts, scales, log_std


def test_a_dapg_policy_pickle_is_read_with_numpy_alone_and_acts_as_mjrl_computes(tmp_path, fake_torch):
    path = tmp_path / "door-v0.pickle"
    weights, biases, shifts, scales, log_std = write_policy(path, fake_torch, [5, 4, 4, 3])
    text = path.read_bytes()
    assert b"mjrl.policies.gaussian_mlp" in text and b"_load_from_bytes" in text  # the release's layout
    for name in ("torch", "torch.storage", "torch._utils", "mjrl.policies.gaussian_mlp"):
        sys.modules.pop(name)  # read with none of them importable
    policy = read_policy(path)
    obs = np.random.default_rng(1).normal(size=(7, 5))
    h = (obs - shifts["in_shift"]) / (scales["in_scale"] + 1e-8)
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ w.T + b
        h = np.tanh(h) if i < len(weights) - 1 else h
    np.testing.assert_allclose(policy.mean(obs), h * scales["out_scale"] + shifts["out_shift"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(policy.log_std, log_std, rtol=1e-6)
    draws = np.array([policy.sample(obs[0], np.random.default_rng(s)) for s in range(4000)])
    np.testing.assert_allclose(draws.std(0), np.exp(log_std), rtol=0.1)


def test_a_pickle_that_names_anything_else_is_refused_without_running_it(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            import os
            return os.system, ("touch " + str(tmp_path / "ran"),)

    bad = tmp_path / "bad.pickle"
    bad.write_bytes(pickle.dumps(Evil()))
    assert main(["collect", "--env", "AdroitHandDoor-v1", "--recipe", "dapg", "--from", str(bad), "--steps", "10",
                 "--out", "test/x-v0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not part of a DAPG release file" in err and "\n" not in err and not (tmp_path / "ran").exists()
    (tmp_path / "empty.pickle").write_bytes(b"")
    with pytest.raises(Exception, match="not a DAPG demonstrations file"):
        read_demos(tmp_path / "empty.pickle")


def _stand_in_demos(path, episodes=2, steps=30, seed=0):
    """Demonstrations in the release's layout: episodes recorded in AdroitHandDoor-v1 from states it visited."""
    env = make_env("AdroitHandDoor-v1")
    rng = np.random.default_rng(seed)
    demos = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        start = env.unwrapped.get_env_state()
        observations, actions = [], []
        for _ in range(steps):
            action = rng.uniform(-1.3, 1.3, 28)  # human recordings exceed the [-1, 1] the env applies
            observations.append(obs)
            actions.append(action)
            obs, *_ = env.step(np.clip(action, -1, 1))
        demos.append({"observations": np.array(observations), "actions": np.array(actions),
                      "rewards": np.zeros(steps), "init_state_dict": {k: np.array(v) for k, v in start.items()}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(demos, protocol=3))
    return demos


def test_demos_recipe_replays_the_recordings_in_the_v1_env(tmp_path, minari_root, capsys):
    release = tmp_path / "hand_dapg"
    demos = _stand_in_demos(release / "dapg" / "demonstrations" / "door-v0_demos.pickle")
    assert main(["collect", "--env", "AdroitHandDoor-v1", "--recipe", "demos", "--from", str(release),
                 "--out", "test/door-human-v0"]) == 0
    raw = read_dataset("test/door-human-v0")
    assert [len(e) for e in raw.episodes] == [30, 30] and raw.successes is not None
    for episode, demo in zip(raw.episodes, demos, strict=True):
        np.testing.assert_allclose(episode.observations[:-1], demo["observations"], atol=1e-5)
        np.testing.assert_allclose(episode.actions, np.clip(demo["actions"], -1, 1), atol=1e-6)
    description = json.loads(minari.load_dataset("test/door-human-v0").storage.metadata["description"])
    assert description["recipe"] == "demos" and description["replay_max_observation_gap"] < 1e-5
    capsys.readouterr()
    assert main(["collect", "--env", "Hopper-v5", "--recipe", "demos", "--from", str(release), "--out", "x/y-v0"]) == 2
    assert "is not an Adroit env" in capsys.readouterr().err


def test_dapg_recipe_rolls_out_sampled_actions(tmp_path, minari_root, fake_torch):
    write_policy(tmp_path / "pen-v0.pickle", fake_torch, [45, 8, 24])
    assert main(["collect", "--env", "AdroitHandPen-v1", "--recipe", "dapg", "--from", str(tmp_path / "pen-v0.pickle"),
                 "--steps", "250", "--out", "test/pen-expert-v0"]) == 0
    raw = read_dataset("test/pen-expert-v0")
    assert [len(e) for e in raw.episodes] == [100, 100, 50]  # pen episodes are 100 steps, as D4RL's
    assert np.abs(np.concatenate([e.actions for e in raw.episodes])).max() <= 1.0
    write_policy(tmp_path / "door-v0.pickle", fake_torch, [39, 8, 28])
    with pytest.raises(Exception, match="wrong task's file"):
        adroit.dapg_sampler(read_policy(tmp_path / "door-v0.pickle"), make_env("AdroitHandPen-v1"), None)


def test_cut_after_last_success_follows_cal_ql_loader():
    success = np.array([False, False, True, True, False, True, False, False])  # reset entry first
    episode = {"observations": np.arange(8.0)[:, None], "actions": np.zeros((7, 1)), "rewards": np.zeros(7),
               "terminations": np.zeros(7, bool), "truncations": np.eye(7, dtype=bool)[-1], "success": success}
    cut = adroit.cut_after_last_success(episode)
    assert len(cut["actions"]) == 5 and len(cut["observations"]) == 6 and cut["truncations"].tolist() == [0, 0, 0, 0, 1]
    assert adroit.cut_after_last_success({**episode, "success": np.zeros(8, bool)}) is None


def test_adroit_binary_recipe_keeps_successes_and_loads_as_the_paper_s_binary_task(tmp_path, minari_root,
                                                                                  monkeypatch):
    monkeypatch.setattr(adroit, "BC_STEPS", 50)
    release = tmp_path / "hand_dapg"
    _stand_in_demos(release / "dapg" / "demonstrations" / "door-v0_demos.pickle", episodes=3, steps=20)
    reached = iter([False] * 25 + [True] + [False] * 10000)  # one success, in the second demonstration
    monkeypatch.setattr(adroit, "success_flag", lambda info: next(reached))
    assert main(["collect", "--env", "AdroitHandDoor-v1", "--recipe", "adroit-binary", "--from", str(release),
                 "--steps", "400", "--out", "test/door-binary-v0"]) == 0
    description = json.loads(minari.load_dataset("test/door-binary-v0").storage.metadata["description"])
    assert description["demo_episodes"] == 3 and description["bc_episodes"] == 2
    assert description["kept_demo_episodes"] == 1 and description["kept_bc_episodes"] == 0
    raw = read_dataset("test/door-binary-v0")
    assert [len(e) for e in raw.episodes] == [6]  # cut after the success at its 6th step
    data = task_transitions(raw, 10.0, 5.0, 0.99, binary_reward=True, sparse_failure_reward=-1.0,
                            terminate_on_success=True)
    assert data.rewards.tolist() == [-5.0] * 5 + [5.0] and data.masks.tolist() == [1.0] * 5 + [0.0]
