"""The exceptions the CLI turns into one line on stderr and an exit status: bad input (2), a stop on request
(130 / 143), divergence (3)."""


class UserError(Exception):
    """Bad input (unknown env, missing checkpoint, impossible config); the message names the fix."""


class Stopped(Exception):
    """The run was asked to stop and wrote a checkpoint; the CLI exits with `code` (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class Diverged(Exception):
    """A loss, Q-value or parameter became non-finite at `step`; the CLI exits with status 3."""

    def __init__(self, step: int, quantity: str):
        super().__init__(f"diverged at step {step}: {quantity} is not finite; the last good checkpoint is kept "
                         "(lower the learning rates or the reward scale)")
        self.step, self.quantity = step, quantity
