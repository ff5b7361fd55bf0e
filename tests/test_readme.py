"""The documentation is executed: every ``ganforge ...`` command and every Python block of README.md,
CONTRIBUTING.md and docs/*.md (``DOCS``, in that order) runs, made small; every relative link is checked.

Blocks. Each page is split into its fenced blocks (```bash, ```python and plain ```), each named by its page
and the line of its opening fence: ``test_readme_block[README.md:16]`` runs the block whose fence is on line
16. A bash block's lines (``\\`` continuations joined, ``#`` comments dropped) are split at ``&&`` into commands; a
plain block counts only its lines that start with ``ganforge`` (the others are trees). Each command is one of:

- ``ganforge ...`` or ``python -m ganforge ...``: run in-process by ``ganforge.cli.main``, which must return 0;
- ``cp SOURCE... FOLDER``: copied with shutil;
- ``python scripts/X.py ...``, ``python benchmarks/X.py ...`` (after ``NAME=value`` environment assignments, if
  any): X.py must exist in the checkout; not run (the screenshot needs Chromium, the benchmarks take minutes);
- ``pip install ...``, ``pytest``: not run (the package is installed; the suite is what runs this file);
- anything else fails: mark its block (below), or teach ``Command.kind`` the command.

A Python block runs with ``exec`` in a fresh namespace, after every block above it; its tracebacks name its page
and line numbers. Blocks run once, in ``DOCS`` order, so a later one uses what an earlier one wrote (``ganforge
export ... --out generator.onnx``, then the block that loads ``generator.onnx``); once a block has failed, a later
one that fails too is skipped, naming both errors (it may fail only for want of what the first would have
made), so the failing block is the one reported; a later one that passes still passes.

Skip marker. An HTML comment on the line right before a block's opening fence (GitHub does not show it)::

    <!-- readme-test: skip (why this block cannot run here) -->

skips the block with that reason: a download, torchrun, a server that runs until Ctrl-C, a synopsis. Keep them
few. A skipped block is still checked: every ``--flag`` its ganforge commands name must be a flag of that
command, and the scripts it names must exist.

Made small. Commands run as written, except:

- ``train`` and ``resume``: the length (--steps, --epochs, --minutes), --batch-size, --log-every, --data-root and
  --(no-)download, --(no-)progress, --(no-)tensorboard are replaced by ``SMALL_TRAIN``: 2 steps of 16 images of
  the embedded MNIST subset (an empty --data-root with --no-download); a resume keeps its run's batch size. A
  run given --eval-every is evaluated every step on 32 samples (``SMALL_EVAL``), so its FID plot exists.
  ``ganforge.train(config)`` called by a Python block gets the same fields.
- ``generate``, ``interpolate``, ``evaluate``: --n, --per-class and interpolate's --steps are capped by
  ``SMALL`` (and set to the cap when absent).

Paths. The run directories that the pages name without making them (``runs/my-run``, ``runs/cond``) are
replaced, in commands and in Python string literals, by tiny runs the test trained (``RUNS``). The pages of
docs/ run in one scratch working directory laid out like a checkout beside ``../shared/data`` (as CI has it),
README.md's in a folder of its own beside it, as a newcomer's commands would:
``docs/images`` holds a copy of the committed pictures, so a command that would replace one without
--overwrite fails as it would in a checkout, and ``../shared/data`` is the real MNIST root when one is found
(``conftest.find_mnist_root``), else an empty folder; ``evaluate`` (which scores against MNIST's test split)
is then skipped, saying so.
"""

import argparse
import contextlib
import dataclasses
import io
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from conftest import find_mnist_root
from ganforge.cli import build_parser, main
from ganforge.config import flag

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
# Every page of documentation, in the order its blocks run (a later page may use what an earlier one made).
DOCS = [
    "README.md",
    "docs/training.md",
    "docs/generate.md",
    "docs/metrics.md",
    "docs/translation.md",
    "docs/serve.md",
    "docs/export.md",
    "docs/performance.md",
    "docs/distributed.md",
    "docs/quality.md",
    "docs/kill_resume.md",
    "docs/errors.md",
    "docs/architecture.md",
    "CONTRIBUTING.md",
]

SKIP_MARKER = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>.*)\)\s*-->")
FENCE = re.compile(r"^```(?P<language>\w*)\s*$")

# train and resume: these TrainConfig fields replace the command's own; --epochs and --minutes are dropped.
SMALL_TRAIN = {"steps": 2, "batch_size": 16, "log_every": 1, "download": False, "progress": False, "tensorboard": False}
SMALL_EVAL = {"eval_every": "1", "eval_samples": 32}  # for a run that asked for --eval-every
DROPPED = ("epochs", "minutes", "data_root")  # data_root becomes an empty folder: the embedded MNIST subset
GAN_ONLY = ("download", "eval_samples", "data_root")  # settings of --task gan alone: other tasks refuse them
# Sampling commands: each flag's value is at most this (and this when the command leaves the flag out).
SMALL = {"generate": {"--n": 16, "--per-class": 2}, "interpolate": {"--n": 4, "--steps": 4}, "evaluate": {"--n": 16}}
# Run directories the README names but never makes -> (model, flags) of the conftest tiny_run that stands in.
RUNS = {"runs/my-run": ("dcgan",), "runs/cond": ("dcgan", "--conditional")}
FACADES = "../shared/data/facades"  # CMP Facades; where a checkout lacks it, small drawn pairs stand in


@dataclasses.dataclass(frozen=True)
class Command:
    """One command of a block: its page, line and words (shlex-split, comments dropped)."""

    doc: str
    line: int
    words: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def kind(self) -> str:
        """ganforge, copy, script (checked, not run), skipped (pip, pytest), torchrun, or unknown."""
        words = self.words
        if words[0] == "ganforge" or words[:3] == ("python", "-m", "ganforge"):
            return "ganforge"
        if words[0] == "cp":
            return "copy"
        script = self.script_words
        if script[0] == "python" and len(script) > 1 and script[1].split("/")[0] in ("scripts", "benchmarks"):
            return "script"
        if words[0] in ("pip", "pytest"):
            return "skipped"
        if words[0] == "torchrun" and "ganforge" in words:
            return "torchrun"
        return "unknown"

    @property
    def script_words(self) -> tuple[str, ...]:
        """The words after any leading environment assignments (``ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/...``):
        a script is not run, so the variables it would get need no honouring."""
        index = 0
        while index < len(self.words) - 1 and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", self.words[index]):
            index += 1
        return self.words[index:]

    @property
    def ganforge_args(self) -> list[str]:
        """The arguments after ``ganforge`` (or ``-m ganforge``)."""
        return list(self.words[self.words.index("ganforge") + 1 :])

    def check(self) -> None:
        """What holds without running: a known kind, existing scripts, ganforge flags its command knows."""
        assert self.kind != "unknown", f"{self.where}: cannot run {shlex.join(self.words)!r}: mark its block"
        if self.kind == "script":
            assert (REPO / self.script_words[1]).is_file(), f"{self.where}: no such script {self.script_words[1]}"
        if self.kind in ("ganforge", "torchrun"):
            check_flags(self.ganforge_args, self.where)


@dataclasses.dataclass(frozen=True)
class Block:
    """A fenced block of a page: the page, the line of its opening fence, its language, text and skip reason."""

    doc: str
    line: int
    language: str  # "bash", "python", ... or "" for a plain fence
    text: str
    skip: str | None  # the reason of a skip marker on the line before the fence

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def commands(self) -> list[Command]:
        """Its commands: bash lines (continuations joined, split at &&), or a plain block's ganforge lines."""
        if self.language not in ("bash", "sh", "shell", ""):
            return []
        logical, start, pending = [], None, ""  # (README line, text) of each line with its continuations
        for number, text in enumerate(self.text.splitlines(), start=self.line + 1):
            start = start or number
            if text.rstrip().endswith("\\"):
                pending += text.rstrip()[:-1] + " "
                continue
            logical.append((start, pending + text))
            start, pending = None, ""
        commands = []
        for line, text in logical:
            if self.language == "" and not text.lstrip().startswith("ganforge "):
                continue  # a tree or a listing, not a command
            words = shlex.split(text, comments=True)
            while "&&" in words:
                commands.append(Command(self.doc, line, tuple(words[: words.index("&&")])))
                words = words[words.index("&&") + 1 :]
            if words:
                commands.append(Command(self.doc, line, tuple(words)))
        return commands


def parse_readme(text: str, doc: str = "README.md") -> list[Block]:
    """The fenced blocks of a Markdown text (the page ``doc``), in order."""
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        marker = SKIP_MARKER.search(lines[index - 1]) if index else None
        skip = marker.group("reason").strip() if marker else None
        text = "\n".join(lines[index + 1 : end]) + "\n"
        blocks.append(Block(doc, index + 1, opening.group("language"), text, skip))
        index = end + 1
    return blocks


BLOCKS = [block for doc in DOCS if (REPO / doc).is_file() for block in parse_readme((REPO / doc).read_text(), doc)]
RUNNABLE = [block for block in BLOCKS if block.language == "python" or block.commands]


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    """ganforge's subcommand name -> its parser (argparse has no public way to list them)."""
    parser = build_parser()
    return next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction)).choices


def check_flags(args: list[str], where: str) -> None:
    """Every --flag in ``args`` (a command or a synopsis with [optional] and {choice} parts) is its command's."""
    name = next((word for word in args if not word.startswith("-")), None)
    parsers = subcommand_parsers()
    assert name in parsers, f"{where}: ganforge has no command {name!r}"
    known = set(parsers[name]._option_string_actions)
    named = [word.strip("[]{}").split("=")[0] for word in args]
    unknown = [word for word in named if word.startswith("--") and word not in known]
    assert not unknown, f"{where}: ganforge {name} has no flag {', '.join(unknown)}"


def without_flags(args: list[str], valued: set[str], switches: set[str]) -> list[str]:
    """``args`` less the config flags of the fields ``valued`` (--name VALUE, --name=VALUE) and ``switches``
    (--name, --no-name)."""
    valued_flags = {f"--{flag(name)}" for name in valued}
    switch_flags = {f"--{prefix}{flag(name)}" for name in switches for prefix in ("", "no-")}
    kept, words = [], iter(args)
    for word in words:
        if word in valued_flags:
            next(words, None)  # its value
        elif word.split("=")[0] not in valued_flags and word not in switch_flags:
            kept.append(word)
    return kept


def as_flags(fields: dict) -> list[str]:
    """{"steps": 4, "progress": False} -> ["--steps", "4", "--no-progress"]."""
    words = []
    for name, value in fields.items():
        if isinstance(value, bool):
            words.append(f"--{'' if value else 'no-'}{flag(name)}")
        else:
            words += [f"--{flag(name)}", str(value)]
    return words


def small_train_args(args: list[str], empty_root: Path, task: str = "gan") -> list[str]:
    """A train or resume command (of a ``task`` run) made small: SMALL_TRAIN's fields (and SMALL_EVAL's) instead
    of its own; a GAN's data root the empty one."""
    evaluated = any(word.split("=")[0] == "--eval-every" for word in args)
    fields = SMALL_TRAIN | (SMALL_EVAL if evaluated else {})
    if args[0] == "resume" or "--resume" in args:  # a resumed run keeps its batch size (a new one is refused)
        fields = {name: value for name, value in fields.items() if name != "batch_size"}
    if task != "gan":
        fields = {name: value for name, value in fields.items() if name not in GAN_ONLY}
    switches = {name for name, value in fields.items() if isinstance(value, bool)}
    kept = without_flags(args, set(fields) - switches | set(DROPPED), switches)
    return kept + as_flags(fields) + (["--data-root", str(empty_root)] if task == "gan" else [])


def task_of(args: list[str]) -> str:
    """The task of a train or resume command: its --task, or the resumed run's (its config.yaml)."""
    from ganforge.config import read_config_values

    if "--task" in args:
        return args[args.index("--task") + 1]
    resumed = args[1] if args[0] == "resume" else args[args.index("--resume") + 1] if "--resume" in args else None
    if resumed and (Path(resumed) / "config.yaml").is_file():
        return read_config_values(Path(resumed) / "config.yaml").get("task", "gan")
    return "gan"


def small_sampling_args(args: list[str], command: str) -> list[str]:
    """A generate, interpolate or evaluate command with SMALL's caps on its counts."""
    args = list(args)
    for name, cap in SMALL.get(command, {}).items():
        if name in args:
            position = args.index(name) + 1
            args[position] = str(min(int(args[position]), cap))
        else:
            args += [name, str(cap)]
    return args


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type's name."""
    return (str(error).splitlines() or [type(error).__name__])[0]


@contextlib.contextmanager
def working_directory(path: Path):
    """Run the body in ``path``, then go back."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


class ReadmeRun:
    """The shared working directory, the stand-in runs, and what each README block did there."""

    def __init__(self, workdir: Path, runs: dict[str, Path], empty_root: Path, has_mnist: bool, facades: Path):
        self.workdir, self.runs, self.empty_root, self.has_mnist = workdir, runs, empty_root, has_mnist
        self.facades = facades  # what FACADES names: the real one, or a stand-in
        self.failed: dict[str, str] = {}  # "page:line" of a block -> why it failed
        self.attempted: set[str] = set()

    def run_through(self, block: Block) -> None:
        """Run every runnable block above ``block`` that has not run yet, then ``block`` itself."""
        for earlier in RUNNABLE[: RUNNABLE.index(block)]:
            if earlier.skip is None and earlier.where not in self.attempted:
                with contextlib.suppress(Exception, pytest.fail.Exception, pytest.skip.Exception):
                    self.attempt(earlier)
        if not self.failed:
            self.attempt(block)
            return
        first = next(iter(self.failed))
        try:
            self.attempt(block)
        except (Exception, pytest.fail.Exception) as error:  # perhaps only for want of what the first one makes
            pytest.skip(f"{first} above failed ({self.failed[first]}), then this block: {first_line(error)}")

    def attempt(self, block: Block) -> None:
        """Run ``block`` once, remembering whether it failed."""
        self.attempted.add(block.where)
        try:
            # README.md's commands run beside the checkout, as a newcomer's would: its files never meet the pages'.
            with working_directory(self.workdir.parent / "newcomer" if block.doc == "README.md" else self.workdir):
                if block.language == "python":
                    self.run_python(block)
                else:
                    self.run_commands(block)
        except (Exception, pytest.fail.Exception) as error:
            self.failed[block.where] = first_line(error)
            raise

    def run_commands(self, block: Block) -> None:
        for command in block.commands:
            command.check()
            if command.kind == "ganforge":
                self.run_ganforge(command)
            elif command.kind == "copy":
                *sources, folder = command.words[1:]
                for source in sources:
                    shutil.copy(source, folder)

    def run_ganforge(self, command: Command) -> None:
        """A ganforge command, its run directories replaced and made small; it must exit 0."""
        args = [str(self.runs.get(word, word)) for word in command.ganforge_args]
        args = [str(self.facades) + word[len(FACADES) :] if word.startswith(FACADES) else word for word in args]
        name = next(word for word in args if not word.startswith("-"))
        if name in ("train", "resume"):
            args = small_train_args(args, self.empty_root, task_of(args))
        scored = args[args.index(name) + 1] if name == "evaluate" else None
        translator = scored is not None and task_of(["resume", scored]) != "gan"
        if not translator:  # a translator's evaluate scores its test split: it takes no --n
            args = small_sampling_args(args, name)
        if name == "evaluate" and not self.has_mnist and not translator:
            pytest.skip("evaluate scores against MNIST's test split: set GANFORGE_DATA_ROOT to a root holding MNIST")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exit:  # argparse's usage errors
                code = exit.code
        last = (err.getvalue().strip().splitlines() or [""])[-1]
        ran = f"{command.where}: ganforge {shlex.join(args)}"
        assert code == 0, f"{ran} exited {code}: {last}\n{err.getvalue()}"

    def run_python(self, block: Block) -> None:
        """A Python block, with ``ganforge.train`` made small; padded so tracebacks give README's line numbers."""
        import ganforge
        from ganforge.training import train

        source = block.text
        for name, path in self.runs.items():
            source = source.replace(f'"{name}"', repr(str(path))).replace(f"'{name}'", repr(str(path)))

        def small_train(config, *args, **kwargs):
            fields = SMALL_TRAIN | (SMALL_EVAL if str(config.eval_every) != "0" else {})
            fields |= {name: None for name in DROPPED} | {"data_root": str(self.empty_root)}
            if config.task != "gan":
                fields = {name: value for name, value in fields.items() if name not in GAN_ONLY}
            return train(dataclasses.replace(config, **fields), *args, **kwargs)

        code = compile("\n" * block.line + source, str(REPO / block.doc), "exec")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ganforge, "train", small_train, raising=False)
            exec(code, {"__name__": "__readme__"})


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory, tiny_run):
    """A ReadmeRun in a scratch checkout: docs/images copied, ../shared/data beside it, a private cache."""
    root = tmp_path_factory.mktemp("readme")
    workdir = root / "checkout"
    shutil.copytree(REPO / "docs" / "images", workdir / "docs" / "images")
    (root / "newcomer").mkdir()
    (root / "shared").mkdir()
    mnist = find_mnist_root()
    if mnist is not None:
        (root / "shared" / "data").symlink_to(mnist, target_is_directory=True)
    else:
        (root / "shared" / "data").mkdir()
    empty_root = root / "empty-root"
    empty_root.mkdir()
    runs = {name: tiny_run(*spec) for name, spec in RUNS.items()}
    facades = workdir / FACADES
    if not facades.is_dir():
        from test_translation import side_by_side_folder

        facades = side_by_side_folder(root / "facades-stand-in", train=16, test=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))  # evaluate's reference features, never ~/.cache
        yield ReadmeRun(workdir, runs, empty_root, mnist is not None, facades)


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.where for block in RUNNABLE])
def test_readme_block(readme_run, block):
    if block.skip is not None:  # still checked: the ganforge commands' flags, the scripts named
        for command in block.commands:
            if command.kind != "unknown":  # a skipped block may be a shell script (SLURM's)
                command.check()
        pytest.skip(f"marked in {block.doc}: {block.skip}")
    readme_run.run_through(block)


def fenced_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of every line inside a ``` fence, found by counting fences alone (no parser)."""
    inside, lines = False, []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            inside = not inside
        elif inside:
            lines.append((number, line))
    return lines


def test_the_parser_finds_every_block_and_command_of_every_page():
    # Checked against a count made without the parser, not against the pages' counts on one day: a page may
    # lose or gain examples, but a parser that stops seeing a block or a command fails here.
    for doc in DOCS:
        text = (REPO / doc).read_text()
        blocks = [block for block in BLOCKS if block.doc == doc]
        assert len(blocks) == sum(line.startswith("```") for line in text.splitlines()) // 2, doc
        found = {c.line for block in blocks for c in block.commands if c.kind == "ganforge"}
        written = [n for n, line in fenced_lines(text) if re.match(r"\s*(ganforge|python -m ganforge) ", line)]
        assert set(written) <= found, f"{doc} lines the parser did not see: {set(written) - found}"
    assert any(block.language == "python" for block in RUNNABLE) and any(block.commands for block in RUNNABLE)
    commands = [c for block in BLOCKS for c in block.commands if c.kind == "ganforge"]
    continued = next(c for c in commands if "[--precision" in c.words)  # the synopsis, 4 lines joined
    assert continued.words[:2] == ("ganforge", "train") and continued.words[-1] == "RUN_DIR]"


def test_every_page_of_documentation_is_run():
    pages = {"README.md", "CONTRIBUTING.md"} | {f"docs/{path.name}" for path in (REPO / "docs").glob("*.md")}
    assert set(DOCS) == pages, f"pages DOCS does not list, or lists but the checkout lacks: {set(DOCS) ^ pages}"


def test_every_command_is_known_and_every_marker_names_a_block_and_a_reason():
    for block in BLOCKS:
        for command in block.commands if block.skip is None else []:
            assert command.kind != "unknown", f"{command.where}: {shlex.join(command.words)}"
    for doc in DOCS:
        markers = SKIP_MARKER.findall((REPO / doc).read_text())
        skipped = [block for block in BLOCKS if block.doc == doc and block.skip is not None]
        assert len(markers) == len(skipped), f"{doc}: a readme-test marker not on the line before a block's fence"
        assert all(block.skip for block in skipped), f"{doc}: a readme-test marker without a reason"


LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)|!\[[^\]]*\]\((?P<image>[^)\s]+)\)")


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    found = set()
    for line in text.splitlines():
        heading = re.match(r"#+\s+(.*)", line)
        if heading and not line.startswith("#!"):
            title = re.sub(r"[`*]", "", heading.group(1)).strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def relative_links(text: str) -> list[tuple[int, str]]:
    """(line, target) of every link and image of a page's text that is not a URL, code blocks left out."""
    fenced = {number for number, _ in fenced_lines(text)}
    links = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in LINK.finditer(line if number not in fenced else ""):
            target = match.group("target") or match.group("image")
            if not re.match(r"[a-z]+:", target):
                links.append((number, target))
    return links


def test_every_relative_link_of_every_page_names_a_file_and_a_heading_that_exist():
    checked = 0
    for doc in DOCS:
        for line, target in relative_links((REPO / doc).read_text()):
            path, _, anchor = target.partition("#")
            file = (REPO / doc).parent / path if path else REPO / doc
            assert file.exists(), f"{doc}:{line}: {target} names no file"
            if anchor and file.suffix == ".md":
                assert anchor in anchors(file.read_text()), f"{doc}:{line}: {file.name} has no heading #{anchor}"
            checked += 1
    assert checked > len(DOCS), "the link parser found almost no links"


def test_the_link_check_finds_links_images_and_anchors_outside_code():
    text = "# A title, with `code`\n\nsee [there](#a-title-with-code) and ![x](pic.png)\n```\n[not](a.md)\n```\n"
    assert anchors(text) == {"a-title-with-code"}
    assert relative_links(text + "[web](https://x.org/a.md)\n") == [(3, "#a-title-with-code"), (3, "pic.png")]


def test_every_stand_in_run_is_used():
    texts = [block.text for block in RUNNABLE if block.skip is None]
    for name in RUNS:
        assert any(name in text for text in texts), f"RUNS names {name}, which no runnable block uses"


def test_made_small_replaces_the_length_data_and_logging_flags(tmp_path):
    args = ["train", "--model", "mlp", "--minutes", "10", "--data-root", "../shared/data", "--progress", "--out", "x"]
    small = small_train_args(args + ["--eval-every=250"], tmp_path)
    assert small[:5] == ["train", "--model", "mlp", "--out", "x"]
    assert small[5:] == [*as_flags(SMALL_TRAIN | SMALL_EVAL), "--data-root", str(tmp_path)]
    assert "--batch-size" not in small_train_args(["resume", "runs/x", "--steps", "100"], tmp_path)
    small = small_sampling_args(["generate", "r", "--n", "10000"], "generate")
    assert small == ["generate", "r", "--n", "16", "--per-class", "2"]
