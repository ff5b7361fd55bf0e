"""``export --format hub`` folders load with huggingface_hub's own ``PyTorchModelHubMixin``, offline, for every
task (a grayscale and a colour GAN, pix2pix, CycleGAN both ways), to what ``ganforge.load`` gives; the model
card parses with ``ModelCard.load`` and names a task from the Hub's list."""

import numpy as np
import pytest
import torch

huggingface_hub = pytest.importorskip("huggingface_hub", reason="the test loads with huggingface_hub's mixin")
pytest.importorskip("safetensors")

from ganforge import load, train  # noqa: E402
from ganforge.cli import main  # noqa: E402
from ganforge.export import export_generator  # noqa: E402
from ganforge.models import MODELS  # noqa: E402
from test_translation import side_by_side_folder, translation_config  # noqa: E402

# The Hub's tasks for images made from noise and from images (huggingface.js, packages/tasks: PIPELINE_DATA).
HUB_TASKS = {"unconditional-image-generation", "image-to-image", "text-to-image"}


def mixin_of(model: str, direction: str = "generator") -> type:
    """A ``PyTorchModelHubMixin`` subclass of ganforge's class for ``model``'s generator or translator."""
    spec = MODELS[model]
    return type(f"Hub{spec.generator.__name__}", (spec.generator, huggingface_hub.PyTorchModelHubMixin), {})


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_run):
    """{name: (hub folder, ganforge handle of the run)} for each kind of run."""
    root = tmp_path_factory.mktemp("hub")
    rng = np.random.default_rng(0)
    colour = root / "colour.npz"
    np.savez(colour, images=rng.integers(0, 256, (64, 3, 32, 32), dtype=np.uint8))
    args = ["train", "--data", colour, "--steps", "2", "--batch-size", "8", "--out", root / "colour-run"]
    assert main([str(arg) for arg in [*args, "--no-progress", "--no-tensorboard"]]) == 0
    pairs = side_by_side_folder(root / "pairs", train=4, test=1)
    train(translation_config(pairs, root / "pix2pix", steps=1, batch_size=2))
    train(translation_config(pairs, root / "cyclegan", task="cyclegan", steps=1, batch_size=2))
    runs = {"gray": tiny_run("dcgan", "--conditional"), "colour": root / "colour-run"}
    runs |= {"pix2pix": root / "pix2pix", "cyclegan": root / "cyclegan"}
    folders = {}
    for name, run in runs.items():
        folders[name] = export_generator(run, "hub", root / f"hub-{name}")
    return {name: (folders[name], load(runs[name])) for name in runs}


@pytest.mark.parametrize("name", ["gray", "colour"])
def test_a_gans_hub_folder_loads_with_the_mixin_to_the_same_images(name, exports):
    folder, run = exports[name]
    generator = mixin_of(run.description["model"]).from_pretrained(folder).eval()
    z = torch.randn(6, run.z_dim, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(6) % run.num_classes if run.num_classes else None
    with torch.no_grad():
        ours = run.generator(z) if labels is None else run.generator(z, labels)
        theirs = generator(z) if labels is None else generator(z, labels)
    assert theirs.shape[1:] == tuple(run.description["image_shape"])
    torch.testing.assert_close(theirs, ours)
    assert torch.equal(load(folder).sample(8, seed=3), run.sample(8, seed=3))


@pytest.mark.parametrize("name", ["pix2pix", "cyclegan"])
def test_a_translators_hub_folder_loads_with_the_mixin_each_way(name, exports):
    folder, run = exports[name]
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    for direction in run.generators:
        where = folder if direction == "AtoB" else folder / direction
        translator = mixin_of(run.description["model"]).from_pretrained(where).eval()
        with torch.no_grad():
            torch.testing.assert_close(translator(images), run.generator(direction)(images))
    again = load(folder)
    assert again.generators.keys() == run.generators.keys()
    uint8 = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(again.translate(uint8), run.translate(uint8))


@pytest.mark.parametrize("name", ["gray", "colour", "pix2pix", "cyclegan"])
def test_the_model_card_parses_and_names_a_hub_task(name, exports):
    folder, _ = exports[name]
    card = huggingface_hub.ModelCard.load(folder / "README.md")
    assert card.data.library_name == "ganforge" and card.data.pipeline_tag in HUB_TASKS
    want = "image-to-image" if name in ("pix2pix", "cyclegan") else "unconditional-image-generation"
    assert card.data.pipeline_tag == want


def test_the_card_is_written_alike_with_and_without_huggingface_hub(monkeypatch):
    import sys

    from ganforge.export import card_front_matter

    results = dict(name="dcgan-mnist-2000", task="unconditional-image-generation", dataset_name="mnist")
    results |= dict(dataset_type="mnist", metrics=[("fid", 9.21, "FID on mnist features, 2000 samples")])
    for args in (("mit", "unconditional-image-generation", ["ganforge", "gan"], ["mnist"], results),
                 ("other", "image-to-image", ["ganforge", "pix2pix"], [], None)):  # fmt: skip
        with_library = card_front_matter(*args)
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, "huggingface_hub", None)  # not installed
            without = card_front_matter(*args)
        assert with_library == without
        card = huggingface_hub.ModelCard("\n".join(with_library) + "\n\n# a model\n")
        assert card.data.license == args[0] and card.data.pipeline_tag == args[1]
    assert card.data.eval_results is None
    front = card_front_matter("mit", "unconditional-image-generation", ["ganforge"], ["mnist"], results)
    card = huggingface_hub.ModelCard("\n".join(front) + "\n")
    assert card.data.eval_results[0].metric_value == 9.21 and card.data.eval_results[0].dataset_name == "mnist"


class LocalHub:
    """A stand-in for ``huggingface_hub.HfApi`` that keeps repositories in a folder: never the network."""

    root = None  # set by the test: where the repositories go

    def create_repo(self, repo_id, repo_type, private, exist_ok):
        (self.root / repo_id).mkdir(parents=True, exist_ok=exist_ok)
        (self.root / repo_id / ".private").write_text(str(private))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, folder_path, repo_id, repo_type, commit_message):
        import shutil

        shutil.copytree(folder_path, self.root / repo_id, dirs_exist_ok=True)
        (self.root / repo_id / ".message").write_text(commit_message)


def test_push_uploads_a_hub_folder_and_refuses_in_one_line(exports, tmp_path, monkeypatch, capsys):
    import sys

    from test_cli import run_cli

    monkeypatch.setattr(LocalHub, "root", tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub, "HfApi", LocalHub)
    folder, _ = exports["gray"]
    code, out, err = run_cli(capsys, "push", folder, "me/digits", "--private")
    assert code == 0 and "uploaded" in out and "https://huggingface.co/me/digits" in out, err
    pushed = tmp_path / "hub" / "me" / "digits"
    assert (pushed / "config.json").read_bytes() == (folder / "config.json").read_bytes()
    assert (pushed / "model.safetensors").is_file() and (pushed / ".private").read_text() == "True"
    code, _, err = run_cli(capsys, "push", tmp_path, "me/x")  # not an exported folder
    assert code == 1 and len(err.strip().splitlines()) == 1 and "is not a folder that ganforge export" in err

    def refuse(self, *args, **kwargs):
        raise OSError("401 Client Error: Unauthorized (no token)")

    monkeypatch.setattr(LocalHub, "create_repo", refuse)
    code, _, err = run_cli(capsys, "push", folder, "me/digits")
    assert (
        code == 1
        and err.strip()
        == f"ganforge: error: cannot push {folder} to me/digits: 401 Client Error: Unauthorized (no token)"
    )
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    code, _, err = run_cli(capsys, "push", folder, "me/digits")
    assert code == 1 and "ganforge push needs huggingface_hub: pip install huggingface_hub" in err
