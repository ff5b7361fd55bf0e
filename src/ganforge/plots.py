"""Training plots from a run's metrics.jsonl: losses, D(x) and D(G(z)), and FID when the run was evaluated.

Figures are drawn with matplotlib's object API on the Agg canvas, never
through pyplot, so plotting changes no global backend and needs no display.
"""

import json
import logging
from pathlib import Path

from ganforge.errors import GanforgeError
from ganforge.files import atomic_write

log = logging.getLogger("ganforge")


# The values a plot draws. A bad one (a string, NaN, infinity, ±1e308) is dropped from its record alone;
# the rest of the record still plots.
PLOTTED = ("d_loss", "g_loss", "d_real", "d_fake", "fid")
# Larger steps and values are dropped, not clipped: a run computes in float32 (or narrower) and never logs
# anything non-finite, so they are corruption, and a clipped point would draw a number the run never had.
# Matplotlib cannot size an axis spanning ±1e308 (it overflows), while float32's range draws fine.
LARGEST = 3.4028234663852886e38  # float32's largest finite value


def is_plottable(value) -> bool:
    """Whether ``value`` is a real number matplotlib can draw (NaN, infinities and bools are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= LARGEST


def checked_step(value) -> int:
    """``value`` if it is a non-negative integer a plot can draw; otherwise ValueError."""
    if not (isinstance(value, int) and is_plottable(value) and value >= 0):
        raise ValueError(f"bad step {value!r}")
    return value


def read_record(line: str) -> tuple[dict, int]:
    """One metrics line as a record with a checked "step" and without its undrawable values; and how many it lost.

    Raises ValueError, KeyError, TypeError or AttributeError for a line that cannot be read at all.
    """
    record = json.loads(line)
    # A rollback {"at_step", "to_step", ...} has no "step": it is drawn at the step the run went back to.
    record["step"] = checked_step(record["to_step"] if record.get("event") == "rollback" else record["step"])
    bad = [name for name in PLOTTED if name in record and not is_plottable(record[name])]
    for name in bad:
        del record[name]
    return record, len(bad)


def read_metrics(run_dir: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """(training records, eval records, rollback records) of a run, each sorted by step.

    After a rollback a run trains some steps again; the records written last
    describe the run that went on, so they replace the earlier ones of the
    same step. A line that cannot be read (cut short by a crash, not JSON, a
    step that is not a non-negative integer) is skipped and a value that
    cannot be drawn is dropped; one warning counts both.
    """
    path = run_dir / "metrics.jsonl"
    if not run_dir.is_dir():
        raise GanforgeError(f"no such run directory: {run_dir}")
    if not path.is_file():
        raise GanforgeError(f"{run_dir} has no metrics.jsonl: is it a ganforge run directory?")
    training, evaluations, rollbacks = {}, {}, []
    skipped_lines, dropped_values, first_bad = 0, 0, None
    with open(path) as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                record, dropped = read_record(line)
            except (ValueError, KeyError, TypeError, AttributeError):
                skipped_lines += 1
                first_bad = first_bad or number
                continue
            dropped_values += dropped
            if dropped:
                first_bad = first_bad or number
            if record.get("event") == "rollback":
                rollbacks.append(record)
            elif record.get("event") == "eval":
                evaluations[record["step"]] = record
            elif "event" not in record:
                training[record["step"]] = record
    if first_bad:
        log.warning(
            f"{path}: skipped {skipped_lines} unreadable line(s) and {dropped_values} value(s) that are not "
            f"finite numbers; the first at line {first_bad}"
        )
    return [training[s] for s in sorted(training)], [evaluations[s] for s in sorted(evaluations)], rollbacks


def new_axes(title: str, ylabel: str):
    """A (figure, axes) pair of the size every plot uses."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    axes = figure.subplots()
    axes.set_title(title)
    axes.set_xlabel("step")
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    return figure, axes


def series(records: list[dict], name: str) -> tuple[list[int], list[float]]:
    """(steps, values) of ``name`` in the records that have it."""
    pairs = [(record["step"], record[name]) for record in records if name in record]
    return [step for step, _ in pairs], [value for _, value in pairs]


def mark_rollbacks(axes, rollbacks: list[dict]) -> None:
    """A dotted vertical line at the step each NaN rollback went back to."""
    for index, rollback in enumerate(rollbacks):
        axes.axvline(rollback["step"], color="gray", linestyle=":", label="rollback" if index == 0 else None)


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write losses.png, discriminator.png and (with FID scores) fid.png into ``run_dir/plots``; returns them."""
    run_dir = Path(run_dir)
    training, evaluations, rollbacks = read_metrics(run_dir)
    if not any(name in record for record in training for name in PLOTTED):
        raise GanforgeError(f"{run_dir / 'metrics.jsonl'} holds no plottable training records yet")
    out = run_dir / "plots"
    try:
        out.mkdir(exist_ok=True)
    except OSError as error:
        raise GanforgeError(f"cannot create {out}: {error.strerror or error}") from None
    figures = {}

    figure, axes = new_axes(f"{run_dir.name}: losses", "loss")
    for name, label in (("d_loss", "discriminator"), ("g_loss", "generator")):
        axes.plot(*series(training, name), label=label)
    mark_rollbacks(axes, rollbacks)
    axes.legend()
    figures["losses.png"] = figure

    figure, axes = new_axes(f"{run_dir.name}: the discriminator's outputs", "probability of 'real'")
    axes.plot(*series(training, "d_real"), label="D(x), real images")
    axes.plot(*series(training, "d_fake"), label="D(G(z)), generated images")
    axes.axhline(0.5, color="gray", linestyle="--", linewidth=1, label="0.5: cannot tell them apart")
    axes.set_ylim(0, 1)
    mark_rollbacks(axes, rollbacks)
    axes.legend()
    figures["discriminator.png"] = figure

    steps, fids = series(evaluations, "fid")
    if fids:
        figure, axes = new_axes(f"{run_dir.name}: FID (lower is better)", "FID")
        axes.plot(steps, fids, marker="o", label="FID")
        best = min(range(len(fids)), key=fids.__getitem__)
        axes.annotate(f"best {fids[best]:.1f}", (steps[best], fids[best]), textcoords="offset points", xytext=(0, 8))
        axes.legend()
        figures["fid.png"] = figure

    written = []
    for name, figure in figures.items():
        written.append(atomic_write(out / name, lambda file, figure=figure: figure.savefig(file, format="png")))
    return written
