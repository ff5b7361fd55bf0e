"""Exports reproduce ganforge's own samples for the same noise, in each format, without ganforge."""

import json

import numpy as np
import pytest
import torch

from ganforge.checkpoint import load_checkpoint, load_generator
from ganforge.export import export_generator
from ganforge.models import MODELS
from ganforge.sampling import generate_images, sample_noise, to_uint8


@pytest.fixture(scope="module", params=[(name,) for name in MODELS] + [("dcgan", "--conditional")], ids=" ".join)
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
