"""Training plots from a run's metrics.jsonl: what its task's step reports (losses; the discriminators' outputs,
on the axis they are measured on: a GAN's probabilities of "real", a translator's patch logits), and the score
its evaluations kept best.pt by, when the run was evaluated.

Figures are drawn with matplotlib's object API on the Agg canvas, never
through pyplot, so plotting changes no global backend and needs no display.
"""

import json
import logging
from pathlib import Path

from ganforge.errors import GanforgeError
from ganforge.files import atomic_write

log = logging.getLogger("ganforge")


# Values that are not a finite number (a string, NaN, infinity, ±1e308) are dropped from their record alone;
# the rest of the record still plots.
EVALUATION_SCORES = ("fid", "l1", "cycle_l1")  # what an evaluation's plot draws, the first a record has
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


def read_record(line: str, plotted: tuple[str, ...] = EVALUATION_SCORES) -> tuple[dict, int]:
    """One metrics line as a record with a checked "step" and without its undrawable values; and how many it lost.

    Raises ValueError, KeyError, TypeError or AttributeError for a line that cannot be read at all.
    """
    record = json.loads(line)
    # A rollback {"at_step", "to_step", ...} has no "step": it is drawn at the step the run went back to.
    record["step"] = checked_step(record["to_step"] if record.get("event") == "rollback" else record["step"])
    bad = [name for name in plotted if name in record and not is_plottable(record[name])]
    for name in bad:
        del record[name]
    return record, len(bad)


def read_metrics(run_dir: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """(training records, eval records, rollback records) of a run, each sorted by step.

    After a rollback a run trains some steps again; the records written last
    describe the run that went on, so they replace the earlier ones of the
    same step. A line that cannot be read (cut short by a crash, not JSON, a
    step that is not a non-negative integer) is skipped and a value that
    cannot be drawn is dropped (of the statistics the run's task reports, and
    the evaluation scores); one warning counts both.
    """
    from ganforge.tasks import task_of_run

    path = run_dir / "metrics.jsonl"
    if not run_dir.is_dir():
        raise GanforgeError(f"no such run directory: {run_dir}")
    if not path.is_file():
        raise GanforgeError(f"{run_dir} has no metrics.jsonl: is it a ganforge run directory?")
    plotted = (*(statistic.name for statistic in task_of_run(run_dir).statistics), *EVALUATION_SCORES)
    training, evaluations, rollbacks = {}, {}, []
    skipped_lines, dropped_values, first_bad = 0, 0, None
    with open(path) as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                record, dropped = read_record(line, plotted)
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
    """Write losses.png, discriminator.png and (when it was evaluated) its score's plot into ``run_dir/plots``,
    each drawing the statistics its task declares (``tasks.Statistic``); returns the files."""
    run_dir = Path(run_dir)
    figures = draw_run(run_dir)
    out = run_dir / "plots"
    try:
        out.mkdir(exist_ok=True)
    except OSError as error:
        raise GanforgeError(f"cannot create {out}: {error.strerror or error}") from None
    written = []
    for name, figure in figures.items():
        written.append(atomic_write(out / name, lambda file, figure=figure: figure.savefig(file, format="png")))
    return written


def draw_run(run_dir: Path) -> dict:
    """The figures of ``plot_run`` by file name: each plot of the statistics the run's task declares, drawn on
    their own axis (a range and a reference line where they have them), and the evaluation's score."""
    from ganforge.tasks import task_of_run

    statistics = task_of_run(run_dir).statistics
    training, evaluations, rollbacks = read_metrics(run_dir)
    if not any(s.name in record for record in training for s in statistics):
        raise GanforgeError(f"{run_dir / 'metrics.jsonl'} holds no plottable training records yet")
    figures = {}
    for plot, title in (("losses", "losses"), ("discriminator", "the discriminator's outputs")):
        drawn = [s for s in statistics if s.plot == plot]
        if not drawn:
            continue
        figure, axes = new_axes(f"{run_dir.name}: {title}", drawn[0].axis)
        for statistic in drawn:
            axes.plot(*series(training, statistic.name), label=statistic.label)
        references = {}  # level -> what it means (the first statistic that says)
        for level, meaning in (s.reference for s in drawn if s.reference):
            references[level] = references.get(level) or meaning
        for level, meaning in references.items():
            label = f"{level:g}: {meaning}" if meaning else None
            axes.axhline(level, color="gray", linestyle="--", linewidth=1, label=label)
        if drawn[0].range:
            axes.set_ylim(*drawn[0].range)
        mark_rollbacks(axes, rollbacks)
        axes.legend()
        figures[f"{plot}.png"] = figure

    score = next((name for name in EVALUATION_SCORES if any(name in record for record in evaluations)), None)
    if score is not None:
        steps, values = series(evaluations, score)
        label = score.upper() if score == "fid" else score.replace("_", " ")
        figure, axes = new_axes(f"{run_dir.name}: {label} (lower is better)", label)
        axes.plot(steps, values, marker="o", label=label)
        best = min(range(len(values)), key=values.__getitem__)
        shown = f"{values[best]:.1f}" if score == "fid" else f"{values[best]:.4f}"
        axes.annotate(f"best {shown}", (steps[best], values[best]), textcoords="offset points", xytext=(0, 8))
        axes.legend()
        figures[f"{score}.png"] = figure
    return figures
