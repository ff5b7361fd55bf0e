"""Training plots from a run's metrics.jsonl: losses, D(x) and D(G(z)), and FID when the run was evaluated.

Figures are drawn with matplotlib's object API on the Agg canvas, never
through pyplot, so plotting changes no global backend and needs no display.
"""

import json
import logging
from pathlib import Path

from ganforge.errors import GanforgeError

log = logging.getLogger("ganforge")


def read_metrics(run_dir: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """(training records, eval records, rollback records) of a run, each sorted by step.

    After a rollback a run trains some steps again; the records written last
    describe the run that went on, so they replace the earlier ones of the
    same step. A line cut short by a crash is skipped.
    """
    path = run_dir / "metrics.jsonl"
    if not run_dir.is_dir():
        raise GanforgeError(f"no such run directory: {run_dir}")
    if not path.is_file():
        raise GanforgeError(f"{run_dir} has no metrics.jsonl: is it a ganforge run directory?")
    training, evaluations, rollbacks, skipped = {}, {}, [], 0
    with open(path) as file:
        for line in file:
            try:
                record = json.loads(line)
                if record.get("event") == "rollback":  # {"at_step", "to_step", ...}: no "step"
                    rollbacks.append({"step": int(record["to_step"])} | record)
                elif record.get("event") == "eval":
                    evaluations[int(record["step"])] = record
                elif "event" not in record:
                    training[int(record["step"])] = record
            except (ValueError, KeyError, TypeError, AttributeError):
                skipped += 1
    if skipped:
        log.warning(f"{path}: skipped {skipped} unreadable line(s)")
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
    pairs = [(record["step"], record[name]) for record in records if isinstance(record.get(name), (int, float))]
    return [step for step, _ in pairs], [value for _, value in pairs]


def mark_rollbacks(axes, rollbacks: list[dict]) -> None:
    """A dotted vertical line at the step each NaN rollback went back to."""
    for index, rollback in enumerate(rollbacks):
        axes.axvline(rollback["step"], color="gray", linestyle=":", label="rollback" if index == 0 else None)


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write losses.png, discriminator.png and (with eval records) fid.png into ``run_dir/plots``; returns them."""
    run_dir = Path(run_dir)
    training, evaluations, rollbacks = read_metrics(run_dir)
    if not training:
        raise GanforgeError(f"{run_dir / 'metrics.jsonl'} holds no training records yet")
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

    if evaluations:
        figure, axes = new_axes(f"{run_dir.name}: FID (lower is better)", "FID")
        steps, fids = series(evaluations, "fid")
        axes.plot(steps, fids, marker="o", label="FID")
        best = min(range(len(fids)), key=fids.__getitem__)
        axes.annotate(f"best {fids[best]:.1f}", (steps[best], fids[best]), textcoords="offset points", xytext=(0, 8))
        axes.legend()
        figures["fid.png"] = figure

    written = []
    for name, figure in figures.items():
        try:
            figure.savefig(out / name)
        except OSError as error:
            raise GanforgeError(f"cannot write {out / name}: {error.strerror or error}") from None
        written.append(out / name)
    return written
