"""Progress bars for what takes a while outside training (generating, scoring, translating): one tqdm bar on
stderr, shown only where stderr is a terminal and a command has not turned them off (``--no-progress``,
``--json``), so a minute-long command is never silent and a pipe or a log file gets no bar.
"""

import contextlib
import contextvars
import sys

SHOWN = contextvars.ContextVar("ganforge_progress", default=True)  # off inside ``progress_shown(False)``
DELAY = 1.0  # seconds before a bar appears: work done sooner shows none


@contextlib.contextmanager
def progress_shown(show: bool):
    """Within the block, bars are shown (where stderr is a terminal) or never."""
    token = SHOWN.set(show)
    try:
        yield
    finally:
        SHOWN.reset(token)


def progress_bar(total: int, desc: str, unit: str = "image"):
    """A tqdm bar of ``total`` ``unit``s on stderr; one that shows nothing where bars are off or stderr is not a
    terminal (tqdm's ``disable=None``). Use it as a context manager and ``update(n)`` it: an update after a Ctrl-C
    that a library swallowed (a bare ``except:`` around a lazy import) raises KeyboardInterrupt, so the command
    stops instead of running to its end."""
    from tqdm import tqdm

    class Bar(tqdm):
        def update(self, n=1):
            from ganforge.monitor import stop_if_interrupted_early

            stop_if_interrupted_early()
            return super().update(n)

    shown = SHOWN.get()
    return Bar(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        leave=False,
        delay=DELAY,
        file=sys.stderr,
        disable=None if shown else True,
        dynamic_ncols=True,
    )
