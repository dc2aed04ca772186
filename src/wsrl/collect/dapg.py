"""Read the DAPG release's files (github.com/aravindr93/hand_dapg) with numpy alone: its expert policies and its
human demonstrations, from which D4RL's and Minari's Adroit datasets were made (docs/reproduce.md §6).

A policy pickle holds an mjrl `MLP` whose tensors are nested old-format `torch.save` blobs. The unpickler below maps
each class it names to a plain container (or refuses it), and decodes the blobs' raw storages into numpy arrays, so
neither torch nor mjrl is needed and no code from the file is run: only the names listed in `_ALLOWED` resolve.
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsrl.errors import UserError

_TORCH_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64,
                 "IntStorage": np.int32}


class _Record:
    """A pickled object's attributes, whatever its class was (mjrl MLP / FCNetwork, torch ModuleList / Linear)."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


class _TorchFunctions:
    """Stands in for `torch._C._VariableFunctions`: `getattr(it, "tanh")` gives the name "tanh"."""


def _named(owner: Any, name: str) -> str:
    if owner is not _TorchFunctions:
        raise pickle.UnpicklingError(f"getattr on {owner!r} is not allowed")
    return name


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    if not size:
        return storage[offset].copy()
    item = storage.itemsize
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=[s * item for s in stride]).copy()


class _StorageUnpickler(pickle.Unpickler):
    """The object pickle of an old-format `torch.save` blob: storages come as persistent ids."""

    def __init__(self, file: io.BytesIO):
        super().__init__(file)
        self.storages: dict[str, tuple[type, int]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _TORCH_DTYPES:
            return _TORCH_DTYPES[name]
        raise pickle.UnpicklingError(f"storage of unknown type {module}.{name}")

    def persistent_load(self, pid: Any) -> str:
        kind, dtype, key, _location, count, _view = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        self.storages[key] = (dtype, count)
        return key


def _load_storage(blob: bytes) -> np.ndarray:
    """One storage saved by `torch.save` in the pre-1.6 format: three header pickles, the object pickle, the list
    of storage keys, then per storage an int64 element count and its raw little-endian data."""
    stream = io.BytesIO(blob)
    for _ in range(3):  # magic number, protocol version, sys info
        pickle.load(stream)
    unpickler = _StorageUnpickler(stream)
    root = unpickler.load()
    arrays = {}
    for key in pickle.load(stream):
        dtype, count = unpickler.storages[key]
        (stored,) = struct.unpack("<q", stream.read(8))
        if stored != count:
            raise pickle.UnpicklingError(f"storage {key} holds {stored} elements, its header says {count}")
        little = np.dtype(dtype).newbyteorder("<")
        arrays[key] = np.frombuffer(stream.read(count * little.itemsize), dtype=little)
    return arrays[root].astype(arrays[root].dtype.newbyteorder("="))


_ALLOWED: dict[tuple[str, str], Any] = {
    ("mjrl.policies.gaussian_mlp", "MLP"): _Record,
    ("mjrl.utils.fc_network", "FCNetwork"): _Record,
    ("torch.nn.modules.container", "ModuleList"): _Record,
    ("torch.nn.modules.linear", "Linear"): _Record,
    ("torch.nn.backends.thnn", "_get_thnn_function_backend"): lambda: None,
    ("torch._utils", "_rebuild_parameter"): lambda data, *_: data,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch._C", "_VariableFunctions"): _TorchFunctions,
    ("builtins", "getattr"): _named,
    ("collections", "OrderedDict"): dict,
}
_NUMPY = {"_reconstruct", "ndarray", "dtype", "scalar"}


class _ReleaseUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray") and name in _NUMPY:
            return getattr(np if name in ("ndarray", "dtype") else np._core.multiarray, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a DAPG release file")


def _unpickle(path: str | Path, what: str) -> Any:
    try:
        with open(path, "rb") as f:
            return _ReleaseUnpickler(f).load()
    except FileNotFoundError:
        raise UserError(f"{what} {path} not found; pass a file of github.com/aravindr93/hand_dapg") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, struct.error, AttributeError) as e:
        raise UserError(f"{path} is not a DAPG {what} ({e}); pass a file of github.com/aravindr93/hand_dapg's "
                        "dapg/ folder") from None


@dataclass(frozen=True)
class DapgPolicy:
    """An mjrl Gaussian MLP: mean = FC((obs - in_shift) / (in_scale + 1e-8)) * out_scale + out_shift, tanh between
    layers; sampled actions add exp(log_std) * N(0, 1). Actions are in the Adroit envs' [-1, 1] units."""

    weights: tuple[np.ndarray, ...]  # (out, in), as torch's Linear stores them
    biases: tuple[np.ndarray, ...]
    in_shift: np.ndarray
    in_scale: np.ndarray
    out_shift: np.ndarray
    out_scale: np.ndarray
    log_std: np.ndarray

    @property
    def obs_dim(self) -> int:
        return self.weights[0].shape[1]

    @property
    def act_dim(self) -> int:
        return self.weights[-1].shape[0]

    def mean(self, obs: np.ndarray) -> np.ndarray:
        h = (np.asarray(obs, np.float64) - self.in_shift) / (self.in_scale + 1e-8)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w.T + b
            if i < len(self.weights) - 1:
                h = np.tanh(h)
        return h * self.out_scale + self.out_shift

    def sample(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mean = self.mean(obs)
        return mean + np.exp(self.log_std) * rng.standard_normal(mean.shape)


def read_policy(path: str | Path) -> DapgPolicy:
    """A `dapg/policies/*-v0.pickle` file as a numpy policy."""
    policy = _unpickle(path, "policy file")
    try:
        model = policy.model
        if getattr(model, "nonlinearity", "tanh") != "tanh":
            raise UserError(f"{path}: hidden nonlinearity {model.nonlinearity!r}; DAPG policies use tanh")
        layers = [model._modules["fc_layers"]._modules[k]._parameters for k in
                  sorted(model._modules["fc_layers"]._modules, key=int)]
        as64 = lambda x: np.asarray(x, np.float64).reshape(-1)  # noqa: E731
        out = DapgPolicy(weights=tuple(np.asarray(p["weight"], np.float64) for p in layers),
                         biases=tuple(as64(p["bias"]) for p in layers), in_shift=as64(model.in_shift),
                         in_scale=as64(model.in_scale), out_shift=as64(model.out_shift),
                         out_scale=as64(model.out_scale), log_std=as64(policy.log_std))
    except (AttributeError, KeyError, TypeError) as e:
        raise UserError(f"{path} is a pickle but not an mjrl Gaussian MLP policy (missing {e})") from None
    for i in range(1, len(out.weights)):
        if out.weights[i].shape[1] != out.weights[i - 1].shape[0]:
            raise UserError(f"{path}: layer {i} takes {out.weights[i].shape[1]} inputs, the layer before gives "
                            f"{out.weights[i - 1].shape[0]}; the file is damaged")
    if {len(out.in_shift), len(out.in_scale)} != {out.obs_dim} or \
            {len(out.out_shift), len(out.out_scale), len(out.log_std)} != {out.act_dim}:
        raise UserError(f"{path}: shift/scale/log_std sizes disagree with the layers; the file is damaged")
    return out


DEMO_KEYS = ("observations", "actions", "init_state_dict")


def read_demos(path: str | Path) -> list[dict[str, Any]]:
    """A `dapg/demonstrations/*_demos.pickle` file: a list of episodes, each with observations (T, obs), actions
    (T, act), rewards and `init_state_dict` (the simulator state to reset to: qpos, qvel and the task's body)."""
    demos = _unpickle(path, "demonstrations file")
    if not isinstance(demos, list) or not demos:
        raise UserError(f"{path}: expected a non-empty list of demonstration episodes, found {type(demos).__name__}")
    for i, demo in enumerate(demos):
        missing = [k for k in DEMO_KEYS if not isinstance(demo, dict) or k not in demo]
        if missing:
            raise UserError(f"{path}: demonstration {i} has no {', '.join(missing)}; not a DAPG demonstrations file")
        if len(demo["observations"]) != len(demo["actions"]):
            raise UserError(f"{path}: demonstration {i} has {len(demo['observations'])} observations for "
                            f"{len(demo['actions'])} actions; the file is damaged")
    return demos
