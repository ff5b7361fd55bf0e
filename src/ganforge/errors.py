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


def one_line(text: str) -> str:
    """``text`` with its control characters escaped (a newline in a file name shows as \\n): what ganforge prints is
    one line per message, whatever the names it quotes hold."""
    return "".join(character if character.isprintable() else repr(character)[1:-1] for character in text)


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation that failed: Python's MemoryError, torch's on the CPU (a RuntimeError
    from its allocator) or on a GPU (torch.OutOfMemoryError)."""
    text = str(error)
    return (
        isinstance(error, MemoryError)
        or type(error).__name__ == "OutOfMemoryError"
        or (isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text))
    )
