"""The command line's entry point (the ``ganforge`` script, ``python -m ganforge``): Ctrl-C from the first moment.

Nothing but ``signal``, ``sys`` and ``threading`` is imported before the
holding handler is in place: a Ctrl-C pressed right after Enter, while the
command line's own modules import, is held and then stops the command with
``ganforge: interrupted`` and exit 130, instead of being lost in an import
(a library's bare ``except:``) or ending in a traceback.
"""

import os
import signal
import sys
import threading

INTERRUPTED = 130  # the exit code of a command stopped by Ctrl-C (128 + SIGINT)


def main(argv: list[str] | None = None) -> int:
    """Run the command line (``ganforge.cli.main``) with Ctrl-C held while it imports; returns the exit code.

    An interrupted command ends the process at once with exit 130: CPython kills a process by SIGINT at exit
    (exit -2) once a KeyboardInterrupt has passed through code run by ``exec`` (dataclasses, namedtuple, a lazy
    import), even when it was caught (gh-128130).
    """
    try:
        with InterruptsAfterImports():
            from ganforge.cli import main as run_command_line
        code = run_command_line(argv)
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        code = INTERRUPTED
    if code == INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED)
    return code


class InterruptsAfterImports:
    """Holds Ctrl-C back while modules import, then raises it as KeyboardInterrupt.

    Raised in the middle of torch's imports, KeyboardInterrupt can be lost (a
    library's bare ``except:`` took it while torch imported triton, and a run
    went on training) or, raised inside the ``exec`` that dataclasses and
    namedtuple run, make ``python -m ganforge`` die by SIGINT instead of
    exiting 130 (CPython marks it unhandled even when caught: gh-128130).
    Outside the main thread (where Python allows no handlers) it does nothing.
    """

    def __init__(self):
        self.requested = False
        self.previous = None

    def _hold(self, signum, frame):
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.requested:
            raise KeyboardInterrupt
        return False
