"""The one exception type users see; the CLI prints it as one line."""


class GanforgeError(Exception):
    """A problem with the user's input or environment (exit code 1)."""

    exit_code = 1


class UsageError(GanforgeError):
    """A bad flag or value on the command line (exit code 2)."""

    exit_code = 2


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (at most ``limit`` characters), or its type's name if empty."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]
