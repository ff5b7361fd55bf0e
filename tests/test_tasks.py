"""The task registry: a third task is one entry (a toy paired regression, declared here, trained, resumed, loaded,
run and evaluated through the command line with no file under src/ changed); every task and model round-trips;
every command works on every task's run or says in one line which tasks it serves; and outside tasks/ no source
file names a task."""

import ast
import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from conftest import REPO, task_models
from ganforge.checkpoint import load_checkpoint
from ganforge.config import TrainConfig, fill, with_model_recipe, with_run_defaults
from ganforge.data import EpochSampler, scale_images
from ganforge.errors import UsageError
from ganforge.metrics.translation import pair_scores
from ganforge.settings import setting
from ganforge.tasks import TASKS, RunData, Statistic, Task, Trainer, serving
from ganforge.tasks.translation.data import load_translation_data
from ganforge.tasks.translation.handle import TrainedTranslator, translate_images
from ganforge.training.state import optimizer_step, wrap_for_training
from test_cli import run_cli
from test_training import assert_same_tensors
from test_translation import side_by_side_folder

SIZE = 16  # the toy task's images


# ---------------------------------------------------------------- a third task, declared here and nowhere else


@dataclass
class RegressionSettings:
    """The toy task's own settings: its section in config.yaml, and its flags."""

    target_scale: float = setting(1.0, "multiply the targets by this before regressing on them", bounds="(0, inf)")


class RegressionTrainer(Trainer):
    """A U-Net regressed on pairs by L1 alone: no discriminator, one optimiser."""

    metric = "l1"
    statistics = (Statistic("l1", "L1 to the target", "L1", "losses"),)

    def __init__(self, config, state, data, device, context):
        self.config, self.state, self.device, self.context = config, state, device, context
        self.data, self.test = data.train, data.held_out
        wrap_for_training(state, context, device, config.compile)
        self.sampler = EpochSampler(len(self.data.a), config.batch_size, config.seed)
        self.evaluates = context.is_main_process and config.eval_every != "0"

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch

    def base_learning_rates(self) -> dict[str, float]:
        return {"g": self.config.g_lr}

    def train_step(self, step: int) -> dict:
        indices = self.sampler.indices(step)
        a, b = (scale_images(x[indices], (-1.0, 1.0)) for x in (self.data.a, self.data.b))
        noise = 0.01 * torch.randn(a.shape, generator=self.state.noise_rng)  # the state's stream: resumed exactly
        loss = (self.state.train_generators["AtoB"](a + noise) - b * self.config.settings.target_scale).abs().mean()
        optimizer_step(loss, self.state.optimizers["g"], self.state.scalers["g"])
        for name, average in self.state.averages.items():
            average.update(self.state.generators[name], self.config.batch_size, (step + 1) * self.config.batch_size)
        return {"l1": loss.detach()}

    def sample_grid(self):
        a, b = self.test.a[:4], self.test.b[:4]
        out = translate_images(self.state.sampling_generators["AtoB"], a)
        return torch.cat([torch.stack(row) for row in zip(a, out, b)]), 3

    def evaluate(self) -> dict:
        return pair_scores(translate_images(self.state.sampling_generators["AtoB"], self.test.a), self.test.b)


@dataclass
class TrainedRegression(TrainedTranslator):
    """The toy task's handle: a translator's (it translates), scored on its own test pairs."""

    def evaluate(self, reference: str | None = None) -> dict:
        _, test, split = load_translation_data(
            reference or self.config["data"], "AtoB", SIZE, SIZE, None, self.config["holdout"], need_pairs=True
        )
        return {"split": split} | pair_scores(self.translate(test.a), test.b)


class Regression(Task):
    name = "toy-regression"
    summary = "a paired regression, declared by a test"
    settings = RegressionSettings
    models = ("unet",)
    defaults = dict(model="unet", loss="nonsaturating", precision="32", image_size=SIZE)
    commands = frozenset({"translate"})
    statistics = RegressionTrainer.statistics

    def resolve(self, config, data=None):
        config = with_model_recipe(fill(config, self.defaults | {"holdout": 0.25}))
        if data is None:
            return config
        return with_run_defaults(config, f"{self.name}-{Path(config.data).name}", str(Path(config.data).resolve()))

    def load_data(self, config):
        data, test, split = load_translation_data(
            config.data, "AtoB", config.image_size, config.image_size, None, config.holdout, need_pairs=True
        )
        return RunData(data, test, f"{len(data.a)} pairs", (tuple(data.a.shape),), len(data.a), [Path(config.data)])

    def networks(self, config, data):
        shape = dict(in_channels=3, out_channels=3, width=config.width, image_size=config.image_size)
        return {"AtoB": shape | dict(norm="instance", dropout=False)}, {}

    def trainer(self, config, state, data, device, context):
        return RegressionTrainer(config, state, data, device, context)

    def handle(self, checkpoint, path, device, ema):
        return TrainedRegression.from_checkpoint(checkpoint, path, device, ema)


@pytest.fixture
def toy_task(monkeypatch):
    """The toy task in the registry, for this test only."""
    monkeypatch.setitem(TASKS, Regression.name, Regression())
    return Regression.name


def train_args(data: Path, out: Path, *flags) -> list:
    args = ["train", "--task", "toy-regression", "--data", data, "--out", out, "--width", 4, "--batch-size", 2]
    return args + ["--threads", 1, "--no-progress", "--no-tensorboard", "--sample-every", "0", *flags]


def test_a_new_task_is_one_registry_entry(toy_task, tmp_path, capsys):
    """Declared in this file alone: its flags and section, training, exact resume, load, translate, evaluate,
    plot and export, all through the command line."""
    data = side_by_side_folder(tmp_path / "data", train=8, test=4)
    code, _, err = run_cli(capsys, *train_args(data, tmp_path / "whole", "--steps", 6, "--target-scale", 0.5))
    assert code == 0, err
    code, _, err = run_cli(capsys, *train_args(data, tmp_path / "split", "--steps", 3, "--target-scale", 0.5))
    assert code == 0, err
    code, _, err = run_cli(capsys, "resume", tmp_path / "split", "--steps", 6)
    assert code == 0, err
    whole, split = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "split")
    assert whole["task"] == split["task"] == "toy-regression" and whole["step"] == split["step"] == 6
    assert set(whole["optimizers"]) == {"g"} and whole["discriminators"] == {}
    for part in ("generators", "optimizers", "noise_rng"):
        assert_same_tensors({part: whole[part]}, {part: split[part]})
    written = yaml_of(tmp_path / "whole" / "config.yaml")
    assert written["toy-regression"] == {"target_scale": 0.5} and "z_dim" not in str(written)

    model = ganforge.load(tmp_path / "whole")
    assert isinstance(model, TrainedRegression) and model.task == "toy-regression"
    _, test, _ = load_translation_data(data, "AtoB", SIZE, SIZE, None, 0.25, need_pairs=True)
    (tmp_path / "inputs").mkdir()
    for index, image in enumerate(test.a):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / "inputs" / f"{index}.png")
    code, said, err = run_cli(capsys, "translate", tmp_path / "whole", tmp_path / "inputs", "--out", tmp_path / "out")
    assert code == 0 and "wrote 4 translated images" in said, err
    translated = np.asarray(Image.open(tmp_path / "out" / "0.png"))
    assert np.array_equal(translated, model.translate(test.a[:1])[0].permute(1, 2, 0).numpy())
    code, said, err = run_cli(capsys, "evaluate", tmp_path / "whole", "--json")
    assert code == 0, err
    scores = json.loads(said)
    assert scores["split"] == "test" and scores["l1"] == pytest.approx(
        pair_scores(model.translate(test.a), test.b)["l1"]
    )
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "whole", "--cas")
    assert code == 2 and "--cas is not an option of ganforge evaluate for a toy-regression run" in err
    code, said, err = run_cli(capsys, "plot", tmp_path / "whole")
    assert code == 0 and "losses.png" in said and "discriminator.png" not in said, err
    code, _, err = run_cli(capsys, "generate", tmp_path / "whole")
    assert code == 2 and "ganforge generate serves gan runs; " in err and "toy-regression run" in err


def yaml_of(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def test_a_flag_of_the_new_task_belongs_to_it(toy_task, capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--target-scale", "2", "--print-config")
    assert code == 2 and "--target-scale belongs to --task toy-regression, not --task gan" in err
    code, out, err = run_cli(capsys, "train", "--task", "toy-regression", "--data", tmp_path, "--print-config")
    assert code == 0, err
    assert yaml_of_text(out)["toy-regression"] == {"target_scale": 1.0}


def yaml_of_text(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)


# ---------------------------------------------------------------- every task and model


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return side_by_side_folder(tmp_path_factory.mktemp("pairs") / "data", train=8, test=4)


@pytest.mark.slow
@pytest.mark.parametrize("task, model", task_models(), ids=[f"{t}-{m}" for t, m in task_models()])
def test_every_task_trains_every_model_it_lists_and_loads_it_back(task, model, pairs, mnist_root, tmp_path, capsys):
    """A few steps of each (task, model) through the command line; ``ganforge.load`` then gives the task's handle,
    whose generators are the checkpoint's (the moving averages where kept) and give the same outputs."""
    data = ["--data", "mnist", "--data-root", mnist_root, "--no-conditional"] if task == "gan" else ["--data", pairs]
    size = ["--image-size", 28 if task == "gan" else SIZE]
    args = ["train", "--task", task, "--model", model, *data, *size, "--width", 4, "--batch-size", 2, "--steps", 2]
    code, _, err = run_cli(
        capsys, *args, "--out", tmp_path / "run", "--threads", 1, "--no-progress", "--no-tensorboard"
    )
    assert code == 0, err
    checkpoint = load_checkpoint(tmp_path / "run")
    model_handle = ganforge.load(tmp_path / "run")
    assert model_handle.task == task == checkpoint["task"] and type(model_handle) is type(
        TASKS[task].handle(checkpoint, Path("x.pt"), torch.device("cpu"), True)
    )
    weights = checkpoint.get("ema_generators") or checkpoint["generators"]
    handles = model_handle.generators if hasattr(model_handle, "generators") else {"generator": model_handle.generator}
    assert set(handles) == set(weights)
    for name, generator in handles.items():
        assert_same_tensors(generator.state_dict(), weights[name])


# ---------------------------------------------------------------- every command on every task's run

COMMANDS = ("generate", "interpolate", "translate", "evaluate", "export", "plot")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, pairs) -> dict[str, Path]:
    """A GAN run, a pix2pix run and a CycleGAN run of a few steps each."""
    from ganforge import train

    root = tmp_path_factory.mktemp("runs")
    digits = root / "digits.npz"
    rng = np.random.default_rng(0)
    np.savez(digits, images=rng.integers(0, 256, (80, 1, 16, 16), dtype=np.uint8), labels=np.arange(80) % 2)
    quiet = dict(steps=2, batch_size=2, width=4, threads=1, progress=False, tensorboard=False, sample_every="0")
    made = {}
    for task, extra in (("gan", dict(data=str(digits), model="mlp", holdout=0.25)), ("pix2pix", {}), ("cyclegan", {})):
        values = dict(task=task, data=str(pairs), image_size=SIZE, out=str(root / task)) | extra | quiet
        train(TrainConfig.from_dict(values | ({"image_size": None} if task == "gan" else {})))
        made[task] = root / task
    return made


def command_args(command: str, run: Path, tmp: Path, pairs: Path) -> list:
    """The command line of ``command`` on ``run``, writing under ``tmp``."""
    return {
        "generate": ["generate", run, "--n", 4, "--out", tmp / "grid.png"],
        "interpolate": ["interpolate", run, "--steps", 2, "--n", 1, "--out", tmp / "walk.gif"],
        "translate": ["translate", run, pairs / "test", "--out", tmp / "translated", "--no-progress"],
        "evaluate": ["evaluate", run, "--json"] + (["--features", "swd", "--n", 10] if run.name == "gan" else []),
        "export": ["export", run, "--format", "safetensors", "--out", tmp / "model.safetensors"],
        "plot": ["plot", run],
    }[command]


@pytest.mark.parametrize("task", ["gan", "pix2pix", "cyclegan"])
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_works_on_every_tasks_run_or_names_the_tasks_it_serves(
    runs, pairs, tmp_path, capsys, task, command
):
    code, out, err = run_cli(capsys, *command_args(command, runs[task], tmp_path, pairs))
    if TASKS[task].serves(command):
        assert code == 0, err
    else:
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        served = " and ".join(serving(command))
        assert f"ganforge {command} serves {served} runs; " in err and f"is a {task} run" in err


def test_an_option_only_another_tasks_runs_take_is_refused(runs, tmp_path, capsys):
    for args, message in [
        (["evaluate", runs["pix2pix"], "--cas"], "--cas is not an option of ganforge evaluate for a pix2pix run"),
        (["evaluate", runs["cyclegan"], "--n", "10"], "--n is not an option of ganforge evaluate for a cyclegan run"),
        (
            ["evaluate", runs["pix2pix"], "--noise-std", "1.5"],
            "--noise-std is not an option of ganforge evaluate for a pix2pix run",
        ),
        (
            ["export", runs["gan"], "--format", "onnx", "--out", tmp_path / "g.onnx", "--direction", "BtoA"],
            "--direction is not an option of ganforge export for a gan run",
        ),
    ]:
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and err.strip() == f"ganforge: error: {message}", err
    from ganforge.serve import create_app

    with pytest.raises(UsageError, match="--max-n is not an option of ganforge serve for a pix2pix run"):
        create_app(runs["pix2pix"], max_n=4)


@pytest.mark.parametrize("task", ["gan", "pix2pix", "cyclegan"])
def test_every_tasks_run_serves_its_page_and_exports_to_a_hub_folder_that_loads_back(runs, tmp_path, task):
    pytest.importorskip("fastapi", reason="ganforge serve needs fastapi: pip install -e '.[serve]'")
    pytest.importorskip("safetensors", reason="the hub folder needs safetensors: pip install -e '.[export]'")
    from fastapi.testclient import TestClient

    from ganforge.serve import create_app

    with TestClient(create_app(runs[task])) as client:
        assert client.get("/").status_code == 200 and client.get("/api/model").json()["run"] == task
    folder = ganforge.export_generator(runs[task], "hub", tmp_path / "hub")
    exported, trained = ganforge.load(folder), ganforge.load(runs[task])
    assert exported.task == trained.task == task and json.loads((folder / "config.json").read_text())["task"] == task
    if task == "gan":
        assert torch.equal(exported.sample(6, seed=1), trained.sample(6, seed=1))
        scored = dict(n=10, features="swd")  # offline, from the folder alone: "no images found" before
        assert ganforge.evaluate(folder, **scored) == ganforge.evaluate(runs[task], **scored)
    else:
        images = torch.randint(0, 256, (2, 3, SIZE, SIZE), dtype=torch.uint8)
        for direction in trained.generators:
            assert torch.equal(exported.translate(images, direction), trained.translate(images, direction))
        assert ganforge.evaluate(folder) == ganforge.evaluate(runs[task])  # offline, from the folder alone


@pytest.mark.parametrize("task", ["pix2pix", "cyclegan"])
def test_evaluate_works_from_python_and_on_a_checkpoint_file_for_every_task(runs, task):
    """``ganforge.evaluate(translation_run)`` raised; ``evaluate`` on a translation checkpoint file advised
    ``ganforge translate``: a run's task is read from the checkpoint itself."""
    from ganforge.checkpoint import resolve_checkpoint

    scores = ganforge.evaluate(runs[task])
    assert scores == ganforge.evaluate(resolve_checkpoint(runs[task]))
    assert scores["task"] == task and "swd" in scores


# ---------------------------------------------------------------- one place per task

TASK_WORDS = re.compile(r"pix2pix|cyclegan", re.IGNORECASE)


def python_sources() -> list[Path]:
    """Every module of src/ganforge outside tasks/ and models/ (the model files are the translators' own)."""
    package = REPO / "src" / "ganforge"
    skipped = (package / "tasks", package / "models")
    return [p for p in sorted(package.rglob("*.py")) if not any(p.is_relative_to(folder) for folder in skipped)]


def task_mentions(path: Path) -> list[str]:
    """Where ``path`` names a task: a string (its docstrings included) or a name that says pix2pix or cyclegan,
    a string that is exactly a task's name, or a comparison with a task's name."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if TASK_WORDS.search(node.value) or (id(node) not in docstrings and node.value in TASKS):
                found.append(f"{path.name}:{node.lineno}: {node.value[:60]!r}")
        elif isinstance(node, (ast.Name, ast.Attribute, ast.arg)):
            name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else node.arg
            if TASK_WORDS.search(name) or name in ("translates", "TranslationRunError", "run_task"):
                found.append(f"{path.name}:{node.lineno}: {name}")
    return found


def test_outside_tasks_no_source_file_names_a_task_or_tests_which_task_a_run_is():
    mentions = [mention for path in python_sources() for mention in task_mentions(path)]
    assert not mentions, "\n".join(mentions)
    assert len(python_sources()) > 30


def test_the_check_sees_a_task_named(tmp_path):
    """The check above can fail: each way of naming a task is caught."""
    path = tmp_path / "module.py"
    path.write_text(
        '"""Plain."""\nif config.task == "pix2pix":\n    pass\nmode = "gan"\nstate.pools = CycleGANState()\n'
    )
    assert len(task_mentions(path)) == 3
    assert dataclasses and json  # imported above for the tests of this file
