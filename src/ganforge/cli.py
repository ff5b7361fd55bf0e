"""The command line: parse flags, call the library, print errors as one line.

Every ``train`` flag is a field of ``TrainConfig`` or of a task's own settings
(its help text lives there); every command is a public function first:
``train``, ``resume``, ``generate``, ``translate``, ``evaluate``,
``interpolate``, ``export_generator``, ``plot_run``, ``serve``. The command
line never asks which task a run is: the library loads the run and asks it.
Each command's flags are declared by its ``add_<command>``, beside the
``run_<command>`` that calls the library. Nothing here imports torch until a
command runs, so ``--help`` and ``--version`` answer at once.
"""

import argparse
import dataclasses
import importlib
import json
import logging
import math
import os
import signal
import sys
import threading
import types
import typing
import warnings

from ganforge.config import (
    DEVICES,
    EXPORT_FORMATS,
    FEATURE_EXTRACTORS,
    GRAYSCALE_DATASET_NOISE_STD,
    MAX_SEED,
    SERVE_MAX_N,
    SHARED,
    TrainConfig,
    config_from_dict,
    config_to_yaml,
    foreign_setting,
    read_config_values,
)
from ganforge.entry import InterruptsAfterImports
from ganforge.errors import GanforgeError, UsageError, one_line
from ganforge.models import MODELS
from ganforge.progress import progress_shown
from ganforge.settings import flag
from ganforge.tasks import DEFAULT_TASK, TASKS, serving
from ganforge.tasks.translation import DIRECTIONS, SIDE_BY_SIDE
from ganforge.version import __version__

log = logging.getLogger("ganforge")

# What train and resume import while Ctrl-C is held back (InterruptsAfterImports): the training code, and
# torchvision, which the data pipeline would otherwise import lazily once the run is under way (a CI run lost
# a Ctrl-C sent a few seconds into ``ganforge resume`` on a folder, and the run went on training). Translate and
# evaluate resize images with it too: imported lazily, it took 1.5 s in which a Ctrl-C to translate was lost
# (the command ran to its end) or became "RuntimeError: Error calling __set_name__" while triton imported.
TRAINING_IMPORTS = "ganforge.training,torchvision.transforms"
TRANSLATE_IMPORTS = "ganforge.tasks.translation.handle,torchvision.transforms"
EVALUATE_IMPORTS = "ganforge.commands,torchvision.transforms"


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit code 2)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def field_type(hint) -> type:
    """int | None -> int."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def config_fields() -> list[tuple[dataclasses.Field, list[str]]]:
    """Every flag of ``train``: (its field, the tasks whose own settings declare it; [] for a shared field). A
    field that several tasks declare is one flag."""
    fields = [(field, []) for field in dataclasses.fields(TrainConfig) if field.name in SHARED]
    own: dict[str, tuple[dataclasses.Field, list[str]]] = {}
    for task_name, task in TASKS.items():
        for field in dataclasses.fields(task.settings):
            own.setdefault(field.name, (field, []))[1].append(task_name)
    return fields + list(own.values())


def default_text(field: dataclasses.Field, owners: list[str]) -> str:
    """What --help says a flag's default is: per task where the tasks differ (their defaults, their own
    settings' defaults, the models' recipes), else the field's own words or value."""
    meta, name = field.metadata, field.name
    if owners:
        defaults = {task: default_of(TASKS[task].settings, name) for task in owners}
        texts = {task: meta["default_help"] or value for task, value in defaults.items()}
        return one_or_each({task: text_of(text) for task, text in texts.items()})
    per_task = {
        task_name: task.default_help.get(name, task.defaults.get(name))
        for task_name, task in TASKS.items()
        if name in task.default_help or name in task.defaults
    }
    recipe = {"width": "width", "batch_size": "batch_size", "lr": "lr", "ema": "ema"}
    if name in recipe:  # the models' published recipes, then what each task changes of them
        models = ", ".join(f"{model} {text_of(getattr(spec, recipe[name]))}" for model, spec in MODELS.items())
        changed: dict[str, list[str]] = {}  # text: the tasks that say it
        for task, text in per_task.items():
            changed.setdefault(text, []).append(task)
        return "; ".join([models, *(f"{' and '.join(tasks)}: {text}" for text, tasks in changed.items())])
    if name in ("beta1", "beta2"):
        return ", ".join(f"{model} {spec.betas[name == 'beta2']}" for model, spec in MODELS.items())
    if per_task:
        own = meta["default_help"] or (None if field.default is None else field.default)
        texts = {task: text_of(text) for task, text in per_task.items()}
        rest = [task for task in TASKS if task not in texts]
        if own is not None and rest:
            texts |= {task: text_of(own) for task in rest}
        return one_or_each(texts)
    return text_of(meta["default_help"] or field.default)


def default_of(settings, name: str):
    """The default of the field ``name`` of the dataclass ``settings``."""
    return next(f.default for f in dataclasses.fields(settings) if f.name == name)


def text_of(value) -> str:
    """A default as --help writes it: on/off for booleans."""
    return {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def one_or_each(texts: dict[str, str]) -> str:
    """'x' when every task says x, else 'TASK: x; OTHER: y'."""
    if len(set(texts.values())) == 1:
        return next(iter(texts.values()))
    return "; ".join(f"{task}: {text}" for task, text in texts.items())


def field_help(field: dataclasses.Field, owners: list[str]) -> str:
    """A flag's help: what it is, which tasks take it (a task's own setting), and its default."""
    meta, name = field.metadata, field.name
    text = meta["help"]
    if name == "task":
        text += ": " + "; ".join(f"{task_name}, {task.summary}" for task_name, task in TASKS.items())
    elif name == "model":
        text += ": " + "; ".join(f"{', '.join(task.models)} ({task_name})" for task_name, task in TASKS.items())
    if owners:
        text = f"{' and '.join(owners)}: {text}"
    return f"{text} (default: {default_text(field, owners)})"


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field of TrainConfig and of each task's settings, the tasks' own in a group per owner. Unset
    flags stay absent, so a resume sees what was given."""
    hints = typing.get_type_hints(TrainConfig)
    groups = {}
    for field, owners in config_fields():
        if owners:
            hints = typing.get_type_hints(TASKS[owners[0]].settings)
            key = " and ".join(owners)
            if key not in groups:
                groups[key] = parser.add_argument_group(f"--task {key}")
            where = groups[key]
        else:
            hints, where = typing.get_type_hints(TrainConfig), parser
        kind, meta = field_type(hints[field.name]), field.metadata
        names = [f"--{flag(field.name)}", *(f"--{alias}" for alias in meta["aliases"])]
        help_text = field_help(field, owners)
        if kind is bool:
            where.add_argument(*names, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            where.add_argument(
                *names,
                dest=field.name,
                type=kind,
                choices=meta["choices"],
                metavar=None if meta["choices"] else field.name.upper(),
                default=argparse.SUPPRESS,
                help=help_text,
            )


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


NOISE_STD_HELP = (
    "the noise's spread, as a multiple of the standard normal the generator trained on: below 1 more typical "
    "images, above 1 more varied ones"
)


def label_list(text: str) -> list[int]:
    """argparse type: '0,1,2' -> [0, 1, 2]."""
    try:
        labels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected class numbers such as 0,1,2; got {text!r}") from None
    if not labels:
        raise argparse.ArgumentTypeError("expected at least one class number")
    return labels


def add_source(
    parser: argparse.ArgumentParser,
    metavar: str = "RUN_DIR_OR_CHECKPOINT",
    help: str = "a run directory or a .pt checkpoint",
) -> None:
    """The positional source a command reads its generator (or images) from."""
    parser.add_argument("source", metavar=metavar, help=help)


def add_device(parser: argparse.ArgumentParser, help: str = "device to sample on") -> None:
    """--device, with the choices TrainConfig offers."""
    parser.add_argument("--device", choices=DEVICES, default="auto", help=f"{help} (default: auto)")


def seed_int(text: str) -> int:
    """argparse type: a noise seed, an integer in [0, MAX_SEED] (the page's seeds too)."""
    value = int(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be in [0, {MAX_SEED}], got {value}")
    return value


def add_seed(parser: argparse.ArgumentParser, help: str, default=0) -> None:
    """--seed (default 0) with what it seeds."""
    parser.add_argument("--seed", type=seed_int, default=default, help=f"{help} (default: 0)")


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    """--overwrite: the one way to let a command replace files already at --out."""
    parser.add_argument(
        "--overwrite", action="store_true", help="replace files already at --out (default: refuse, naming them)"
    )


def add_progress(parser: argparse.ArgumentParser) -> None:
    """--progress/--no-progress: a bar on stderr for what takes a while, where stderr is a terminal."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show a progress bar on stderr when it is a terminal (default: on)",
    )


def add_train(commands, common: argparse.ArgumentParser) -> None:
    """ganforge train: one flag per TrainConfig field, plus --resume, --config and --print-config."""
    train = commands.add_parser(
        "train",
        parents=[common],
        help="train a GAN (default: DCGAN on MNIST), or an image-to-image translator (--task)",
        description="Train a run. Every flag is a field of ganforge.TrainConfig or of a task's own settings (the "
        "groups below, by task); a flag of another task than --task is refused.",
    )
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the run in RUN_DIR from its latest checkpoint; only the length, device, data location, "
        "checkpoint, evaluation and logging flags may change (default: start a new run)",
    )
    train.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="start a new run from a YAML config (a run's config.yaml, or one written by hand); flags given "
        "beside it win, and the file's out and overwrite are ignored: --out names the new run (default: none)",
    )
    train.add_argument(
        "--print-config",
        action="store_true",
        help="print the config the flags (and --config) give, the task's and the model's defaults filled, as "
        "YAML, and exit without training; what depends on the data (the size and channels, and so a GAN's loss, "
        "DiffAugment and class conditioning) stays null, filled from the data when the run starts (default: off)",
    )
    add_config_flags(train)
    train.set_defaults(func=run_train, imports=TRAINING_IMPORTS)


def given_config_flags(args: argparse.Namespace) -> dict:
    """The config fields given on the command line, the tasks' own included (unset flags are absent from args)."""
    return {field.name: getattr(args, field.name) for field, _ in config_fields() if hasattr(args, field.name)}


def new_run_config(config_file: str | None, given: dict) -> TrainConfig:
    """The config of a new run: the file's fields (but not where to write), then the flags. A flag of another
    task than the run's is refused in one line naming its owner."""
    values = {}
    if config_file is not None:
        try:
            values = read_config_values(config_file)
        except GanforgeError as error:
            raise UsageError(f"--config {config_file}: {error}") from None
        # A run's config.yaml names that run's directory: a new run never writes there unless --out says so.
        values = {name: value for name, value in values.items() if name not in ("out", "overwrite")}
    task = given.get("task", values.get("task", DEFAULT_TASK))
    if task in TASKS:
        own = {f.name for f in dataclasses.fields(TASKS[task].settings)}
        for name in given:
            if name not in SHARED and name not in own:
                raise foreign_setting(name, task)
    if config_file is None:
        return config_from_dict(given, foreign="refuse")
    try:
        if task != values.get("task", DEFAULT_TASK):  # --task another than the file's: its section, if it has one
            values = {name: value for name, value in values.items() if name in SHARED or name == task}
        return config_from_dict(values | given)
    except GanforgeError as error:
        raise UsageError(f"--config {config_file}: {error}") from None


def run_train(args: argparse.Namespace) -> int:
    """ganforge train: a new run from the given flags (and --config), or --resume of an existing one."""
    given = given_config_flags(args)
    if args.resume and (getattr(args, "config", None) or getattr(args, "print_config", False)):
        raise UsageError("--config and --print-config start a new run: leave out --resume")
    if args.resume:
        from ganforge.training import resume

        resume(args.resume, **given)
        return 0
    config = new_run_config(args.config, given)
    if args.print_config:
        config.validate()
        print(config_to_yaml(config.resolved()), end="")
        return 0
    from ganforge.training import train

    train(config)
    return 0


def add_resume(commands, common: argparse.ArgumentParser) -> None:
    """ganforge resume RUN_DIR: train --resume with the run directory as a positional."""
    resume = commands.add_parser(
        "resume",
        parents=[common],
        help="continue a run from its latest checkpoint (same as train --resume)",
        description="Continue a run with its config.yaml. Only the length, device, data location, checkpoint "
        "and logging flags may change; a new --steps or --epochs replaces the run's length.",
    )
    resume.add_argument("resume", metavar="RUN_DIR", help="the run directory to continue")
    add_config_flags(resume)
    resume.set_defaults(func=run_train, imports=TRAINING_IMPORTS)


def add_generate(commands, common: argparse.ArgumentParser) -> None:
    """ganforge generate: sample images, or a labelled synthetic dataset."""
    generate = commands.add_parser(
        "generate",
        parents=[common],
        help=f"sample images from a trained generator ({' or '.join(serving('generate'))} runs)",
        description="Sample images from a run directory, checkpoint or exported folder.",
    )
    add_source(generate)
    generate.add_argument("--n", type=positive_int, default=64, help="number of images (default: 64)")
    generate.add_argument(
        "--out",
        default="samples.png",
        help="a .png/.jpg grid, an .npz array (images: N,C,H,W uint8), or a folder "
        "ending in '/' for one PNG per image (default: samples.png)",
    )
    add_seed(generate, "noise seed; the same seed gives the same images")
    add_device(generate)
    generate.add_argument("--batch-size", type=positive_int, default=256, help="images per forward pass (default: 256)")
    which = generate.add_mutually_exclusive_group()
    which.add_argument(
        "--label", type=int, default=None, help="conditional models: every image of this class (default: all classes)"
    )
    which.add_argument(
        "--labels",
        type=label_list,
        default=None,
        metavar="L1,L2,...",
        help="conditional models: cycle through these classes, one grid column each (default: all classes)",
    )
    generate.add_argument(
        "--dataset",
        metavar="OUT",
        default=None,
        help="conditional models: write a labelled synthetic dataset instead, as an ImageFolder tree "
        "(one subfolder per class) or an .npz with images and labels (default: off)",
    )
    generate.add_argument(
        "--per-class", type=positive_int, default=1000, help="images per class with --dataset (default: 1000)"
    )
    generate.add_argument(
        "--noise-std",
        type=positive_float,
        default=None,
        help=f"{NOISE_STD_HELP} (default: 1; with --dataset of grayscale images {GRAYSCALE_DATASET_NOISE_STD:g}, "
        "the spread a classifier trained on the set learns most from, docs/quality.md)",
    )
    add_overwrite(generate)
    add_progress(generate)
    generate.add_argument(
        "--ema",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sample the generator's moving average when the run kept one (default: on)",
    )
    generate.set_defaults(func=run_generate, imports="ganforge.tasks.gan.handle")


def run_generate(args: argparse.Namespace) -> int:
    """ganforge generate: sample images and write them where --out says."""
    from ganforge.tasks.gan.handle import export_dataset, generate

    common = dict(
        seed=args.seed, device=args.device, batch_size=args.batch_size, ema=args.ema, overwrite=args.overwrite
    )
    if args.dataset is not None:
        if args.label is not None or args.labels is not None:
            raise UsageError("--dataset writes every class: leave out --label/--labels")
        spread = {} if args.noise_std is None else dict(noise_std=args.noise_std)  # else the dataset's own
        images, labels = export_dataset(args.source, args.dataset, per_class=args.per_class, **common, **spread)
        classes = len(labels.unique())
        print(f"wrote {len(images)} images {tuple(images.shape[1:])}, {classes} classes, to {args.dataset}")
        return 0
    labels = args.label if args.label is not None else args.labels
    spread = 1.0 if args.noise_std is None else args.noise_std
    images = generate(args.source, n=args.n, out=args.out, labels=labels, noise_std=spread, **common)
    print(f"wrote {len(images)} images {tuple(images.shape[1:])} to {args.out}")
    return 0


EVALUATE_OPTIONS = (
    "n",
    "reference",
    "features",
    "inception_weights",
    "data_root",
    "seed",
    "noise_std",
    "cas",
    "cas_epochs",
)


def add_evaluate(commands, common: argparse.ArgumentParser) -> None:
    """ganforge evaluate: a run's scores (a GAN's FID, KID, IS, precision/recall, coverage, CAS; a translator's L1,
    PSNR, SSIM, cycle error), or an .npz's or a folder's. Options given only are passed: each task's run takes
    its own, and refuses the others in one line."""
    evaluate = commands.add_parser(
        "evaluate",
        parents=[common],
        help="score a run, or images: FID, KID, IS, precision/recall, coverage; a translator's L1, PSNR, SSIM",
        description="Score a run (its samples against a reference set, or a translator's test translations against "
        "their targets), an .npz from ganforge generate, or a folder of images. MNIST-like data are scored with "
        "ganforge's digits classifier: those numbers are comparable with each other, not with Inception FIDs in "
        "papers.",
    )
    given = argparse.SUPPRESS  # absent unless given: a run takes the options of its task
    add_source(evaluate, "SOURCE", "a run directory, a .pt checkpoint, an exported folder, an .npz or a folder")
    evaluate.add_argument("--n", type=positive_int, default=given, help="samples to score (default: 10000)")
    evaluate.add_argument(
        "--reference",
        default=given,
        help="the real set: a built-in dataset such as mnist or cifar10 (its test split), an .npz or a folder; an "
        "image-to-image run: a folder in its layout (default: the run's data, else mnist)",
    )
    evaluate.add_argument(
        "--features",
        choices=FEATURE_EXTRACTORS,
        default=given,
        help="feature extractor: a classifier shipped with ganforge (mnist: digits, cifar10: CIFAR-10's classes) "
        "or Inception-v3; auto picks mnist for 1x28x28 images, cifar10 for 3x32x32, else Inception (an "
        "image-to-image run: else swd only); swd scores without a network: the sliced Wasserstein distance "
        "between Laplacian-pyramid patches (default: auto)",
    )
    evaluate.add_argument(
        "--inception-weights",
        default=given,
        metavar="PATH",
        help="the Inception-v3 FID weights file, for machines without internet "
        "(default: $GANFORGE_INCEPTION_WEIGHTS, else download)",
    )
    evaluate.add_argument(
        "--data-root", default=given, help="torchvision data root holding the reference (default: $GANFORGE_DATA_ROOT)"
    )
    add_seed(evaluate, "noise seed when sampling a generator", default=given)
    evaluate.add_argument(
        "--noise-std",
        type=positive_float,
        default=given,
        help=f"a GAN run: {NOISE_STD_HELP} (default: 1; --cas draws the labelled set as ganforge generate "
        f"--dataset does, grayscale at {GRAYSCALE_DATASET_NOISE_STD:g})",
    )
    add_device(evaluate, help="device")
    evaluate.add_argument(
        "--cas",
        action="store_true",
        default=given,
        help="also the Classification Accuracy Score: a small classifier trained on the labelled samples, tested on "
        "the real test set, next to one trained on as many real images (default: off)",
    )
    evaluate.add_argument(
        "--cas-epochs", type=positive_int, default=given, help="epochs of each --cas classifier (default: 3)"
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object on stdout (default: a table)")
    add_progress(evaluate)
    evaluate.set_defaults(func=run_evaluate, imports=EVALUATE_IMPORTS)


def run_evaluate(args: argparse.Namespace) -> int:
    """ganforge evaluate: score a run or images, and print the numbers."""
    from ganforge.commands import evaluate

    options = {name: getattr(args, name) for name in EVALUATE_OPTIONS if hasattr(args, name)}
    print_results(evaluate(args.source, device=args.device, **options), args.json)
    return 0


def print_results(results: dict, as_json: bool) -> None:
    """Scores as one JSON object, or as a table of names and values."""
    if as_json:
        print(json.dumps(results))
        return
    for name, value in results.items():
        print(f"{name:>16}  {value:.4f}" if isinstance(value, float) else f"{name:>16}  {value}")


def add_translate(commands, common: argparse.ArgumentParser) -> None:
    """ganforge translate: image files and folders through a run that translates images."""
    translate = commands.add_parser(
        "translate",
        parents=[common],
        help=f"translate images with a trained {' or '.join(serving('translate'))} run",
        description="Translate image files, and every image in folders, into PNGs in --out (a folder's own "
        "subfolders are kept). Each input is resized to the run's training size first, unless --size says "
        "otherwise; --size 0 keeps each image's own size. Every input's header is read before anything is "
        "written (an unreadable one is skipped with a warning), and --out may not be, or lie in, an input "
        "folder.",
    )
    add_source(translate, "RUN", "a run directory, its .pt checkpoint or an exported folder")
    translate.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    translate.add_argument("--out", required=True, help="the folder to write the translated PNGs into")
    translate.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default="AtoB",
        help="which way: the run's own direction (AtoB), or back with the second generator of a run that trains "
        "both ways (default: AtoB)",
    )
    translate.add_argument(
        "--size",
        type=int,
        default=None,
        help="resize each input to SIZE x SIZE pixels first; 0: translate it at its own size "
        "(default: the run's --image-size)",
    )
    translate.add_argument(
        "--side-by-side",
        choices=SIDE_BY_SIDE,
        default="auto",
        help="whether each input holds a pair side by side (A | B), of which the translator's input half is "
        "translated; auto: yes for an input twice as wide as tall when the run trained on such pairs "
        "(default: auto)",
    )
    add_device(translate, help="device to translate on")
    add_overwrite(translate)
    translate.add_argument(
        "--skip-existing",
        action="store_true",
        help="leave the outputs already in --out as they are and translate the rest: continue a translate that "
        "stopped (default: refuse to replace them)",
    )
    translate.add_argument(
        "--ema",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="translate with the translator's moving average when the run kept one (default: on)",
    )
    add_progress(translate)
    translate.set_defaults(func=run_translate, imports=TRANSLATE_IMPORTS)


def run_translate(args: argparse.Namespace) -> int:
    """ganforge translate: write each input's translation."""
    from ganforge.tasks.translation.handle import translate

    written = translate(
        args.source,
        args.inputs,
        args.out,
        direction=args.direction,
        size=args.size,
        device=args.device,
        overwrite=args.overwrite,
        skip_existing=args.skip_existing,
        progress=args.progress,
        ema=args.ema,
        side_by_side=args.side_by_side,
    )
    print(f"wrote {len(written):,} translated image{'' if len(written) == 1 else 's'} to {args.out}")
    return 0


def add_interpolate(commands, common: argparse.ArgumentParser) -> None:
    """ganforge interpolate: an animated GIF of latent walks."""
    interpolate = commands.add_parser(
        "interpolate",
        parents=[common],
        help="an animated GIF of walks through the latent space",
        description="Write an animated GIF of latent walks: each a closed loop of spherical interpolations "
        "through random noise vectors. A conditional model gets one row per class.",
    )
    add_source(interpolate)
    interpolate.add_argument("--out", default="walk.gif", help="the .gif to write (default: walk.gif)")
    interpolate.add_argument("--steps", type=positive_int, default=60, help="frames in the loop (default: 60)")
    interpolate.add_argument("--n", type=positive_int, default=8, help="walks side by side (default: 8)")
    add_seed(interpolate, "noise seed of the walks")
    interpolate.add_argument("--fps", type=float, default=20.0, help="frames per second (default: 20)")
    add_device(interpolate)
    add_overwrite(interpolate)
    add_progress(interpolate)
    interpolate.set_defaults(func=run_interpolate, imports="ganforge.tasks.gan.handle")


def run_interpolate(args: argparse.Namespace) -> int:
    """ganforge interpolate: write an animated GIF of latent walks."""
    from ganforge.tasks.gan.handle import interpolate

    path = interpolate(
        args.source,
        out=args.out,
        steps=args.steps,
        n=args.n,
        seed=args.seed,
        fps=args.fps,
        device=args.device,
        overwrite=args.overwrite,
    )
    print(f"wrote {args.steps} frames to {path}")
    return 0


def add_export(commands, common: argparse.ArgumentParser) -> None:
    """ganforge export: the run's model as TorchScript, ONNX, safetensors or a hub folder."""
    export = commands.add_parser(
        "export",
        parents=[common],
        help="write the model as a torch.export program, ONNX, safetensors, a Hugging Face folder or TorchScript",
        description="Write the model for use without ganforge; the file carries its description as JSON. A GAN's "
        "generator: noise (B, z_dim) [and labels (B,)] in, images (B, C, H, W) in the model's output range out "
        "(pt2, onnx, safetensors, hub, torchscript). An image-to-image run's translator: images (B, C, H, W) in "
        "[-1, 1] in and out, any height and width that are multiples of its stride (pt2, onnx, safetensors, hub).",
    )
    add_source(export)
    export.add_argument(
        "--format",
        required=True,
        choices=EXPORT_FORMATS,
        help="file format; hub: a folder in a Hugging Face model repository's layout (config.json, "
        "model.safetensors, a README.md model card) that ganforge.load and every command read back",
    )
    export.add_argument("--out", required=True, help="the file to write (a folder for --format hub)")
    export.add_argument(
        "--license",
        default=argparse.SUPPRESS,
        help="--format hub: the licence identifier in the model card (default: other)",
    )
    export.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default=argparse.SUPPRESS,
        help="a run that translates both ways: which of its two translators (default: AtoB)",
    )
    add_overwrite(export)
    export.set_defaults(func=run_export, imports="ganforge.export")


def run_export(args: argparse.Namespace) -> int:
    """ganforge export: write the generator in another format."""
    from ganforge.export import export_generator

    options = {name: getattr(args, name) for name in ("license", "direction") if hasattr(args, name)}
    path = export_generator(args.source, args.format, args.out, overwrite=args.overwrite, **options)
    print(f"wrote the model as {args.format} to {path}")
    return 0


def add_push(commands, common: argparse.ArgumentParser) -> None:
    """ganforge push: an exported hub folder to a Hugging Face model repository (with huggingface_hub)."""
    push = commands.add_parser(
        "push",
        parents=[common],
        help="upload an export --format hub folder to a Hugging Face model repository",
        description="Upload FOLDER (written by ganforge export --format hub) to the Hugging Face model repository "
        "REPO (user/name), creating it when it does not exist. Needs huggingface_hub (pip install huggingface_hub) "
        "and a token (huggingface-cli login, or $HF_TOKEN).",
    )
    push.add_argument("folder", metavar="FOLDER", help="an export --format hub folder")
    push.add_argument("repo", metavar="REPO", help="the model repository, user/name")
    push.add_argument("--private", action="store_true", help="create the repository private (default: public)")
    push.set_defaults(func=run_push, imports="ganforge.export")


def run_push(args: argparse.Namespace) -> int:
    """ganforge push: upload a hub folder."""
    from ganforge.export import push_hub_folder

    print(f"uploaded {args.folder} to {push_hub_folder(args.folder, args.repo, private=args.private)}")
    return 0


def add_plot(commands, common: argparse.ArgumentParser) -> None:
    """ganforge plot: PNG plots of a run's metrics."""
    plot = commands.add_parser(
        "plot",
        parents=[common],
        help="plot a run's losses, its discriminators' outputs, and its evaluations",
        description="Write PNG plots of a run's metrics.jsonl into RUN_DIR/plots: losses.png, discriminator.png "
        "(what its task's step reports, on the axes they are measured on) and, when the run was evaluated during "
        "training (--eval-every), its score's plot (fid.png, l1.png, ...).",
    )
    plot.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")
    plot.set_defaults(func=run_plot, imports="ganforge.plots")


def run_plot(args: argparse.Namespace) -> int:
    """ganforge plot: PNG plots of a run's metrics."""
    from ganforge.plots import plot_run

    for path in plot_run(args.run_dir):
        print(f"wrote {path}")
    return 0


def add_serve(commands, common: argparse.ArgumentParser) -> None:
    """ganforge serve: the web page."""
    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="a web page to explore a trained run",
        description="Serve a run's page and the API behind it (see the README): a GAN's grid of samples, seed box, "
        "class picker for conditional models, latent walk slider and PNG download; an image-to-image run's "
        "upload, translation and download.",
    )
    add_source(serve)
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; anything but loopback opens the page to the network (default: 127.0.0.1)",
    )
    serve.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default: 8000)")
    serve.add_argument(
        "--max-n",
        type=positive_int,
        default=argparse.SUPPRESS,
        help=f"a GAN's page: most images per request (default: {SERVE_MAX_N})",
    )
    serve.add_argument(
        "--max-pixels",
        type=positive_int,
        default=argparse.SUPPRESS,
        help="an image-to-image run's page: the most pixels one request may translate (the size asked for, "
        "squared, or the image's own); more is refused at once (default: 2,097,152)",
    )
    serve.add_argument(
        "--threads", type=positive_int, default=None, help="torch threads for sampling (default: half the cores)"
    )
    add_device(serve)
    serve.set_defaults(func=run_serve, imports="ganforge.serve")


def run_serve(args: argparse.Namespace) -> int:
    """ganforge serve: the web page, until Ctrl-C."""
    from ganforge.serve import serve

    options = {name: getattr(args, name) for name in ("max_n", "max_pixels") if hasattr(args, name)}
    serve(args.source, host=args.host, port=args.port, device=args.device, threads=args.threads, **options)
    return 0


COMMANDS = (
    add_train,
    add_resume,
    add_generate,
    add_translate,
    add_evaluate,
    add_interpolate,
    add_export,
    add_push,
    add_plot,
    add_serve,
)


def build_parser() -> argparse.ArgumentParser:
    """The ganforge parser: global flags and one subcommand per library entry point."""
    # Flags every command takes, before or after its name (ganforge --debug train, ganforge train --debug).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show full tracebacks instead of one-line errors (default: off)",
    )
    parser = Parser(prog="ganforge", description="Train, sample and evaluate GANs with PyTorch.", parents=[common])
    parser.add_argument("--version", action="version", version=f"ganforge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for add_command in COMMANDS:
        add_command(commands, common)
    return parser


class StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is now (it may be replaced, e.g. by a test harness)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


class OneLineFormatter(logging.Formatter):
    """Each message on one line: a file name holding a newline cannot split a warning in two."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return one_line(super().formatMessage(record))


def configure_logging() -> None:
    """ganforge's messages go to stderr as 'ganforge: message' lines."""
    if not log.handlers:
        handler = StderrHandler()
        handler.setFormatter(OneLineFormatter("ganforge: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def rank_tag() -> str:
    """' (rank N)' in the errors of a torchrun process other than rank 0 (the others may fail alike)."""
    rank = os.environ.get("RANK", "0")
    return f" (rank {rank})" if rank != "0" and os.environ.get("WORLD_SIZE", "1") != "1" else ""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 runtime error, 2 usage error, 130 interrupted)."""
    try:
        return run_command(argv)
    except KeyboardInterrupt:  # Ctrl-C at any moment, imports included: one line, never a traceback
        print("ganforge: interrupted", file=sys.stderr)
        return 130


def run_command(argv: list[str] | None) -> int:
    """Parse ``argv`` and run its command; every error becomes one line (``--debug``: the traceback)."""
    with InterruptsAfterImports():
        args = build_parser().parse_args(argv)
        debug = getattr(args, "debug", False)
        configure_logging()
        from tqdm.contrib.logging import logging_redirect_tqdm

        for module in args.imports.split(","):  # the seconds torch takes to import, before the command starts
            importlib.import_module(module)
    with RememberedInterrupts(), warnings.catch_warnings():
        warnings.showwarning = show_warning
        # ganforge's own pixel caps speak for images between PIL's warning (89 MP) and its refusal (179 MP)
        warnings.filterwarnings("ignore", message="Image size .* could be decompression bomb")
        # Bars for what takes a while; a training has its own, and --json asks for nothing but the JSON.
        bars = args.command not in ("train", "resume") and getattr(args, "progress", True)
        try:
            with logging_redirect_tqdm(loggers=[log]), progress_shown(bars and not getattr(args, "json", False)):
                return args.func(args)
        except Exception as error:
            if came_from_ctrl_c(error):
                raise KeyboardInterrupt from error
            if debug:
                raise
            if isinstance(error, GanforgeError):
                print(f"ganforge: error{rank_tag()}: {one_line(str(error))}", file=sys.stderr)
                return error.exit_code
            reason = f"{type(error).__name__}: {one_line(str(error))}"
            print(f"ganforge: error{rank_tag()}: {reason} (rerun with --debug for the traceback)", file=sys.stderr)
            return 1


def came_from_ctrl_c(error: BaseException) -> bool:
    """Whether Ctrl-C is behind ``error``: a KeyboardInterrupt in its chain (Python 3.11 turns one raised in a class
    body's ``__set_name__`` into RuntimeError, as while torch imported triton), or one that the handler saw and
    a library swallowed before this error. Such a command was interrupted; it did not fail."""
    from ganforge.monitor import StopSignal

    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return StopSignal.interrupted_early


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library's warning as one line of ganforge's (Python's shows the file, the line and its source)."""
    print(f"ganforge: warning{rank_tag()}: {one_line(str(message))}", file=sys.stderr)


class RememberedInterrupts:
    """While a command runs, Ctrl-C raises KeyboardInterrupt as usual and is remembered (``monitor.interrupt_now``),
    so that one swallowed on the way (a library's bare ``except:`` around a lazy import) still stops the command: a
    training loop when it starts, a progress bar at its next update, an error it caused; the previous handler is
    back afterwards. Outside the main thread it does nothing."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            from ganforge.monitor import StopSignal, interrupt_now

            StopSignal.interrupted_early = False
            self.previous = signal.signal(signal.SIGINT, interrupt_now)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            from ganforge.monitor import StopSignal

            StopSignal.interrupted_early = False  # remembered for this command only
        return False
