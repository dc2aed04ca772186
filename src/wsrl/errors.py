"""The one exception type for bad user input: the CLI prints its message on one line and exits with 2."""


class UserError(Exception):
    """Bad input (unknown env, missing checkpoint, impossible config); the message names the fix."""
