"""Exports reproduce ganforge's own samples for the same noise, in each format, without ganforge."""

import json

import numpy as np
import pytest
import torch
import yaml

from conftest import gan_models
from ganforge.checkpoint import load_checkpoint
from ganforge.cli import main
from ganforge.errors import GanforgeError, UsageError
from ganforge.export import export_generator
from ganforge.models import MODELS
from ganforge.sampling import generate_images, sample_noise, to_uint8
from ganforge.tasks import load
from ganforge.tasks.gan.handle import load_generator


@pytest.fixture(scope="module", params=[(name,) for name in gan_models()] + [("dcgan", "--conditional")], ids=" ".join)
def run(request, tiny_run):
    return tiny_run(*request.param)


def reference(run, n: int = 5):
    """ganforge's own output for seed 0: (inputs (z,) or (z, labels), float images, uint8 images)."""
    generator = load_generator(run)
    inputs = (sample_noise(n, generator.z_dim, seed=0),)
    if generator.num_classes:
        inputs += (torch.arange(n) % generator.num_classes,)
    with torch.no_grad():
        images = generator(*inputs)
    return inputs, images, generate_images(generator, *inputs[:1], labels=inputs[1] if len(inputs) > 1 else None)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_export_reproduces_the_samples(run, tmp_path):
    path = export_generator(run, "torchscript", tmp_path / "g.pt")
    extra = {"ganforge.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    inputs, images, uint8 = reference(run)
    with torch.no_grad():
        exported = module(*inputs)
    assert torch.allclose(exported, images, atol=1e-5)
    metadata = json.loads(extra["ganforge.json"])
    assert torch.equal(to_uint8(exported, metadata["output_range"]), uint8)
    assert metadata["image_shape"] == [1, 28, 28] and metadata["z_dim"] == 100 and metadata["step"] == 6
    assert metadata["num_classes"] == (10 if len(inputs) == 2 else 0)


@pytest.mark.slow
def test_onnx_export_reproduces_the_samples_for_any_batch_size(run, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    path = export_generator(run, "onnx", tmp_path / "g.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        inputs, images, _ = reference(run, n)
        names = [i.name for i in session.get_inputs()]
        assert names == ["z", "labels"][: len(inputs)]
        (exported,) = session.run(["images"], {name: tensor.numpy() for name, tensor in zip(names, inputs)})
        assert exported.shape == (n, 1, 28, 28)
        np.testing.assert_allclose(exported, images.numpy(), atol=1e-5)
    metadata = json.loads(session.get_modelmeta().custom_metadata_map["ganforge"])
    assert metadata["model"] == load_checkpoint(run)["model"]
    assert metadata["num_classes"] == load_generator(run).num_classes


def test_safetensors_export_rebuilds_the_generator_from_its_metadata(run, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = export_generator(run, "safetensors", tmp_path / "g.safetensors")
    with safe_open(str(path), "pt") as file:
        metadata = json.loads(file.metadata()["ganforge"])
    generator = MODELS[metadata["model"]].generator(**metadata["generator_args"])
    generator.load_state_dict(load_file(str(path)))
    inputs, images, _ = reference(run)
    with torch.no_grad():
        assert torch.allclose(generator.eval()(*inputs), images, atol=1e-5)


@pytest.fixture(scope="module")
def evaluated_run(tiny_run):
    """A conditional dcgan (with EMA, the default) evaluated at steps 3 and 6."""
    return tiny_run("dcgan", "--conditional", "--eval-every", "3", "--eval-samples", "32")


def front_matter(card: str) -> dict:
    """The YAML between the model card's two '---' lines."""
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_hub_folder_loads_back_to_the_same_samples_and_commands_read_it(evaluated_run, tmp_path):
    folder = export_generator(evaluated_run, "hub", tmp_path / "my-gan", license="mit")
    assert sorted(path.name for path in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    exported, original = load(folder), load(evaluated_run)
    assert exported.path == folder / "model.safetensors" and exported.classes == original.classes
    assert exported.config == original.config and exported.num_classes == 10
    assert exported.description == original.description and original.description["ema"]
    for labels in (None, 7):
        assert torch.equal(exported.sample(20, labels=labels, seed=4), original.sample(20, labels=labels, seed=4))
    # Every command reads the folder like a run: generate's grid is the run's own, pixel for pixel.
    assert main(["generate", str(folder), "--n", "20", "--out", str(tmp_path / "hub.png")]) == 0
    assert main(["generate", str(evaluated_run), "--n", "20", "--out", str(tmp_path / "run.png")]) == 0
    assert (tmp_path / "hub.png").read_bytes() == (tmp_path / "run.png").read_bytes()


def test_hub_model_card_names_library_licence_dataset_and_the_last_evaluation_with_its_extractor(
    evaluated_run, tmp_path
):
    folder = export_generator(evaluated_run, "hub", tmp_path / "card", license="cc-by-sa-3.0")
    card = (folder / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "ganforge" and meta["license"] == "cc-by-sa-3.0" and meta["datasets"] == ["mnist"]
    assert meta["pipeline_tag"] == "unconditional-image-generation"  # the Hub's task, conditional or not
    last = [json.loads(line) for line in (evaluated_run / "metrics.jsonl").read_text().splitlines()]
    last = [record for record in last if record.get("event") == "eval"][-1]
    assert last["step"] == 6
    (result,) = meta["model-index"][0]["results"]
    metrics = {metric["type"]: metric for metric in result["metrics"]}
    assert metrics["fid"]["value"] == pytest.approx(last["fid"], rel=1e-5)
    assert "mnist" in metrics["fid"]["name"] and "32 samples" in metrics["fid"]["name"]
    assert "at step 6, on 32 samples" in card and "`mnist` feature extractor" in card
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "ganforge-generator" and config["step"] == 6 and config["config"]["data"] == "mnist"


def test_hub_card_of_a_run_never_evaluated_says_so_and_unconditional_is_unconditional(tiny_run, tmp_path):
    folder = export_generator(tiny_run("mlp"), "hub", tmp_path / "mlp")
    card = (folder / "README.md").read_text()
    meta = front_matter(card)
    assert meta["license"] == "other" and meta["pipeline_tag"] == "unconditional-image-generation"
    assert "model-index" not in meta and "was not evaluated during training" in card


def test_hub_export_replaces_nothing_without_overwrite_and_refuses_what_it_cannot_read(tiny_run, tmp_path):
    run = tiny_run("mlp")
    folder = export_generator(run, "hub", tmp_path / "hub")
    with pytest.raises(UsageError, match="--out would replace .*config.json"):
        export_generator(run, "hub", folder)
    assert export_generator(run, "hub", folder, overwrite=True) == folder
    with pytest.raises(GanforgeError, match="it is a file"):
        export_generator(run, "hub", folder / "README.md")
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(GanforgeError, match="model.safetensors is not a readable safetensors file"):
        load(folder)
    (folder / "config.json").write_text("{")
    with pytest.raises(GanforgeError, match="config.json does not read as JSON"):
        load(folder)
    (folder / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(GanforgeError, match="is not the config.json of a ganforge model"):
        load(folder)


def test_hub_folder_of_an_ema_run_refuses_no_ema(evaluated_run, tmp_path):
    folder = export_generator(evaluated_run, "hub", tmp_path / "hub")
    with pytest.raises(GanforgeError, match="holds only the generators' moving average"):
        load(folder, ema=False)
