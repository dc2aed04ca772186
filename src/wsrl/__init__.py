"""wsrl: offline-to-online reinforcement learning with warm-start fine-tuning (WSRL).

The Python API (docs/api.md): `pretrain`, `train`, `finetune`, `resume`, `evaluate`, `load_policy`, and `export`
(a numpy-only policy file for `wsrl.deploy`); each training call writes an ordinary run directory and returns a
`Run`; bad input raises `UserError`.
"""

from wsrl._version import __version__  # noqa: I001

# The subpackage wsrl.train is imported first, so that the name `wsrl.train` stays the API's function: importing a
# subpackage binds its name in the parent only the first time (`from wsrl.train.online import ...` still works).
import wsrl.train  # noqa: E402, F401, I001
from wsrl.api import Policy, Run, evaluate, export, finetune, load_policy, pretrain, resume, train  # noqa: E402
from wsrl.errors import UserError  # noqa: E402

__all__ = ["Policy", "Run", "UserError", "evaluate", "export", "finetune", "load_policy", "pretrain", "resume", "train",
           "__version__"]
