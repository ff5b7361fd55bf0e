"""The ``>>>`` examples in ganforge's docstrings run, as ``help()`` shows them, so they cannot drift from the code.

Each module of ``src/ganforge`` whose source holds ``>>>`` is run with doctest in a scratch folder where the run
directories the examples name exist: ``runs/my-run`` (a few steps of the default recipe, a conditional DCGAN)
and ``runs/facades`` (a few steps of pix2pix). ``ganforge.train`` is made small there, as in the README's test.
"""

import dataclasses
import doctest
import importlib
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.training import train
from test_readme import working_directory
from test_translation import side_by_side_folder, translation_config

SOURCE = Path(ganforge.__file__).parent
MODULES = sorted(
    ".".join(("ganforge", *path.relative_to(SOURCE).with_suffix("").parts)).removesuffix(".__init__")
    for path in SOURCE.rglob("*.py")
    if ">>>" in path.read_text()
)


def test_the_examples_are_found():
    # The public faces whose docstrings show how to use them: a finder that stops seeing them fails here.
    for name in ("ganforge", "ganforge.tasks", "ganforge.tasks.gan.handle", "ganforge.export"):
        assert name in MODULES, name


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_run):
    root = tmp_path_factory.mktemp("docstrings")
    (root / "runs").mkdir()
    (root / "runs" / "my-run").symlink_to(tiny_run("dcgan", "--conditional"), target_is_directory=True)
    pairs = side_by_side_folder(root / "pairs", train=8, test=2)
    train(translation_config(pairs, root / "runs" / "facades", steps=2, batch_size=2))
    (root / "empty-root").mkdir()
    return root


def small_train(root: Path):
    """``ganforge.train`` for 2 steps of 16 embedded MNIST images, written under ``root/runs``."""

    def run(config, *args, **kwargs):
        small = dict(steps=2, minutes=None, epochs=None, batch_size=16, progress=False, tensorboard=False)
        small |= dict(data_root=str(root / "empty-root"), download=False, out=str(root / "runs" / "example"))
        return train(dataclasses.replace(config, **small), *args, **kwargs)

    return run


@pytest.mark.parametrize("name", MODULES)
def test_the_docstring_examples_run(name, workdir, monkeypatch):
    module = importlib.import_module(name)
    monkeypatch.setattr(ganforge, "train", small_train(workdir), raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(workdir / "cache"))
    label_maps = torch.randint(0, 256, (2, 3, 40, 56), dtype=torch.uint8)  # what the translator examples take
    names = {"ganforge": ganforge, "torch": torch, "label_maps": label_maps}
    tests = [test for test in doctest.DocTestFinder().find(module, globs=vars(module) | names) if test.examples]
    assert tests, f"{name} holds '>>>' but doctest finds no example in it"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    with working_directory(workdir):
        for test in tests:
            runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
