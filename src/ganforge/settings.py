"""Typed settings: a dataclass field with its help, choices, bounds and flag, and the checks they imply.

``TrainConfig`` (the settings every task shares) and each task's own settings
(``tasks.TASKS[name].settings``) declare their fields with
``setting``; the command line makes one flag per field from this metadata, and
``check_settings`` validates an instance against it. Torch-free, so that
``ganforge --help`` answers at once.
"""

import dataclasses
import math
import re
import reprlib
import typing
from dataclasses import field

from ganforge.errors import GanforgeError, UsageError


def setting(
    default,
    help: str,
    choices=None,
    default_help: str | None = None,
    resumable: bool = False,
    bounds: str | None = None,
    aliases: tuple[str, ...] = (),
):
    """A settings field with its help text.

    ``choices``: the values allowed (a registry counts entries added later); ``default_help``: what None
    means, for --help; ``resumable``: a resumed run may change it (how long, where, logging); ``bounds``:
    the interval its value (when not None) must lie in, as "[1, inf)", "(0, inf)" or "[0, 1)";
    ``aliases``: other flag names.
    """
    metadata = {"help": help, "choices": choices, "default_help": default_help, "resumable": resumable}
    return field(default=default, metadata=metadata | {"bounds": bounds, "aliases": aliases})


def flag(name: str) -> str:
    """The command-line flag of a settings field: batch_size -> batch-size."""
    return name.replace("_", "-")


def check_bounds(name: str, value: float, bounds: str) -> None:
    """UsageError unless ``value`` lies in ``bounds`` ("[low, high)" and the like; inf for no upper end)."""
    low, high = (bound_value(end) for end in bounds[1:-1].split(","))
    above = value >= low if bounds[0] == "[" else value > low
    below = value <= high if bounds[-1] == "]" else value < high
    if above and below:
        return
    if high == math.inf:
        wanted = f"at least {low:g}" if bounds[0] == "[" else "positive" if low == 0 else f"above {low:g}"
        wanted = "0 or more" if wanted == "at least 0" else wanted
    else:
        wanted = f"in {bounds}"
    raise UsageError(f"--{flag(name)} must be {wanted}, got {value}")


def bound_value(text: str) -> float:
    """One end of a ``bounds`` interval: a number, a power such as 2**31, or inf."""
    base, _, power = text.strip().partition("**")
    return float(base) ** float(power or 1)


SHOWN = reprlib.Repr()  # how messages quote values: shortened (Python 3.11's Repr takes no arguments)
SHOWN.maxstring = SHOWN.maxother = 60
SHOWN.maxlist = SHOWN.maxdict = 4
SHOWN.maxlevel = 2


def short(value) -> str:
    """``repr(value)``, shortened: a message quotes a value without growing with it (a 40 MB string)."""
    return SHOWN.repr(value)


def check_settings(settings) -> None:
    """UsageError naming the first field of the dataclass instance ``settings`` that is not finite, out of its
    bounds or not one of its choices."""
    for setting_field in dataclasses.fields(settings):
        name, value = setting_field.name, getattr(settings, setting_field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"--{flag(name)} must be a finite number, got {value}")
        bounds, allowed = setting_field.metadata.get("bounds"), setting_field.metadata.get("choices")
        if bounds and value is not None:
            check_bounds(name, value, bounds)
        if allowed and value is not None and value not in allowed:
            raise UsageError(f"unknown --{flag(name)} {short(value)}; choose from {', '.join(map(str, allowed))}")


def field_names(cls) -> tuple[str, ...]:
    """The names of a settings dataclass's fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls))


def check_types(cls, values: dict, where: str = "config value") -> None:
    """GanforgeError unless each of ``values`` has its field's type in the dataclass ``cls`` (an int passes
    for a float: a user may write 1 for 1.0)."""
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        allowed = typing.get_args(hints[name]) or (hints[name],)
        allowed += (int,) if float in allowed else ()
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise GanforgeError(f"{where} {name}: {short(value)} is not {type_name(hints[name])}")


TYPE_NAMES = {bool: "true/false", int: "a whole number", float: "a number", str: "a string", type(None): "null"}


def type_name(hint) -> str:
    """A field's type as a message says it: 'a number', 'a string or null', 'a list' (never <class 'float'>)."""
    if typing.get_origin(hint) in (list, tuple):
        return "a list"
    names = [TYPE_NAMES.get(option, getattr(option, "__name__", str(option))) for option in typing.get_args(hint)]
    return " or ".join(names) if names else TYPE_NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def parse_interval(text: str, name: str = "checkpoint-every") -> tuple[str, float]:
    """'90s' -> ('seconds', 90), '5m' -> ('seconds', 300), '1000' -> ('steps', 1000)."""
    match = re.fullmatch(r"\s*(?:(\d+)|(\d+(?:\.\d+)?)\s*([smh]))\s*", str(text))
    if not match or float(match.group(1) or match.group(2)) <= 0:
        raise UsageError(
            f"--{name} must be a duration like '30s', '5m', '1h' or a whole number of steps; got {short(text)}"
        )
    if match.group(1):
        return "steps", int(match.group(1))
    return "seconds", float(match.group(2)) * {"s": 1, "m": 60, "h": 3600}[match.group(3)]
