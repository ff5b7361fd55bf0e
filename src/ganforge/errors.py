"""The one exception type users see; the CLI prints it as one line."""


class GanforgeError(Exception):
    """A problem with the user's input or environment (exit code 1)."""

    exit_code = 1


class UsageError(GanforgeError):
    """A bad flag or value on the command line (exit code 2)."""

    exit_code = 2
