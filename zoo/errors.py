"""The one exception type users see: a clear, actionable message, printed by the CLI without a traceback."""


class ZooError(Exception):
    """An error caused by the user's input (config, paths, checkpoints, data) rather than a bug in the zoo.

    The message must say what is wrong and what to do about it; `zoo` prints it on one line and exits with code 2.
    """
