"""A GAN run's exports: its generator as TorchScript, ONNX or safetensors, or a folder in the layout of a
Hugging Face model repository (``hub``: config.json, model.safetensors, a README.md model card) that
``ganforge.load`` reads back.

Every export takes noise ``z`` (B, z_dim), and class labels (B,) int64 for a
conditional generator, and gives images (B, C, H, W) as floats in the
generator's output range ([-1, 1] for dcgan, [0, 1] for mlp): exactly what the
generator itself returns. Each file carries the description
``describe_generator`` gives (model, constructor arguments, z_dim, classes,
image shape, output range, step) as JSON metadata.
"""

import io
import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ganforge.checkpoint import HUB_CONFIG, HUB_WEIGHTS
from ganforge.data import resolve_source
from ganforge.errors import GanforgeError
from ganforge.export import (
    METADATA_KEY,
    card_front_matter,
    check_output_path,
    exported_program_bytes,
    hub_config,
    last_evaluation,
    onnx_bytes,
    require_onnx,
    to_safetensors,
    write_hub_folder,
)
from ganforge.files import atomic_write, refuse_to_replace
from ganforge.tasks.base import Trained
from ganforge.version import __version__

log = logging.getLogger("ganforge")

FORMAT = "ganforge-generator"  # the metadata's and config.json's "format"


def example_inputs(generator: nn.Module, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """(z,) or (z, labels) for tracing: what the generator's forward takes."""
    device = next(generator.parameters()).device
    z = torch.randn(batch, generator.z_dim, generator=torch.Generator().manual_seed(0)).to(device)
    if getattr(generator, "num_classes", 0):
        return z, (torch.arange(batch) % generator.num_classes).to(device)
    return (z,)


def to_torchscript(generator: nn.Module, metadata: dict) -> bytes:
    """A traced TorchScript module with the metadata as an extra file, ``ganforge.json``."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # torch 2.14 deprecates torch.jit in favour of torch.export; the format still loads everywhere.
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(generator, example_inputs(generator))
        torch.jit.save(traced, buffer, _extra_files={f"{METADATA_KEY}.json": json.dumps(metadata)})
    return buffer.getvalue()


def to_onnx(generator: nn.Module, metadata: dict) -> bytes:
    """An ONNX model (inputs ``z`` and, when conditional, ``labels``; output ``images``) with a dynamic batch axis."""
    require_onnx()
    inputs = example_inputs(generator)
    names = ["z", "labels"][: len(inputs)]
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        # z and labels share the one batch axis, which the exporter remarks on; nothing is wrong.
        warnings.filterwarnings("ignore", message=".*axis name: batch will not be used", category=UserWarning)
        program = torch.onnx.export(
            generator,
            inputs,
            input_names=names,
            output_names=["images"],
            dynamic_shapes={name: {0: batch} for name in names},
            dynamo=True,
            verbose=False,
        )
    return onnx_bytes(program, metadata)


def to_pt2(generator: nn.Module, metadata: dict) -> bytes:
    """A ``torch.export`` program (inputs ``z`` and, when conditional, ``labels``) with a dynamic batch axis: what
    ``torch.export.load(path).module()`` runs, the format torch 2.14 asks for in place of TorchScript."""
    inputs = example_inputs(generator)
    batch = torch.export.Dim("batch", min=1)
    return exported_program_bytes(generator, inputs, tuple({0: batch} for _ in inputs), metadata)


WRITERS = {"pt2": to_pt2, "torchscript": to_torchscript, "onnx": to_onnx, "safetensors": to_safetensors}


def model_card(description: dict, evaluation: dict | None, license: str) -> str:
    """A README.md model card: YAML front matter as Hugging Face reads it (library, licence, dataset, the
    evaluation in model-index form, its extractor named), then what the model is and how to sample it."""
    config, step = description["config"], description["step"]
    data = str(config.get("data", "unknown data"))
    try:
        builtin = not resolve_source(data).is_path  # a dataset with a name, such as mnist
    except GanforgeError:  # a folder or file that is no longer there
        builtin = False
    task = "unconditional-image-generation"  # the Hub's task for noise to images (a class-conditional one too)
    results = None
    if evaluation:
        extractor, samples = evaluation.get("features", "unknown"), evaluation.get("samples", "?")
        metrics = [
            (name, float(f"{evaluation[name]:.6g}"), f"{name.upper() if name in ('fid', 'kid') else name} on "
             f"{extractor} features, {samples} samples")
            for name in ("fid", "kid", "precision", "recall")
            if isinstance(evaluation.get(name), (int, float))
        ]  # fmt: skip
        name = f"{description['model']}-{data if builtin else 'custom'}-{step}"
        results = dict(name=name, task=task, dataset_name=data, dataset_type=data if builtin else "custom")
        results["metrics"] = metrics
    tags = ["ganforge", "gan", "pytorch", description["model"]]
    front = card_front_matter(license, task, tags, [data] if builtin else [], results)
    shape = "x".join(str(size) for size in description["image_shape"])
    classes = f", class-conditional over {description['num_classes']} classes" if description["num_classes"] else ""
    weights = "the moving average (EMA) of the generator" if description["ema"] else "the generator"
    body = [
        "",
        f"# {description['model']} generator, {data}, step {step:,}",
        "",
        f"A `{description['model']}` generator trained with [ganforge](https://pypi.org/project/ganforge/) "
        f"for {step:,} steps on `{data}`: noise of {description['z_dim']} numbers in, {shape} images out"
        f"{classes}. The weights are {weights}.",
        "",
        "```python",
        "import ganforge",
        "",
        'gen = ganforge.load("path/to/this/folder")  # no network needed',
        "images = gen.sample(64, seed=0)  # (64, C, H, W) uint8",
        "```",
        "",
        f"`{HUB_CONFIG}` holds the model's description and its training config; `{HUB_WEIGHTS}` the generator's "
        f"weights (rebuild it with `ganforge.models.MODELS[{description['model']!r}]` and `generator_args`).",
        "",
        "## Evaluation",
        "",
    ]
    if evaluation:
        body += [
            f"The run's last evaluation during training, at step {evaluation['step']:,}, on "
            f"{evaluation.get('samples', '?')} samples against its reference set, with the "
            f"`{evaluation.get('features')}` feature extractor. Scores from different extractors are not "
            "comparable (ganforge's digits classifier is not Inception-v3).",
            "",
            "| metric | value |",
            "|---|---|",
        ]
        body += [f"| {name} | {value:.6g} |" for name, value in evaluation.items() if isinstance(value, float)]
    else:
        body.append("The run was not evaluated during training; `ganforge evaluate` scores it.")
    return "\n".join(front + body) + "\n"


def export_hub(model: Trained, out: Path, license: str, overwrite: bool) -> Path:
    """Write ``out/`` in a Hugging Face model repository's layout: config.json, model.safetensors, README.md."""
    description = {"format": FORMAT, "ganforge_version": __version__, "task": model.task} | model.description
    description |= {"classes": model.classes, "config": model.config}
    card = model_card(description, last_evaluation(model.path), license)
    weights = to_safetensors(model.generator, {"format": FORMAT, "ganforge_version": __version__})
    config = hub_config(model.description["generator_args"], description)
    return write_hub_folder(out, config, weights, card, overwrite)


def export(model: Trained, format: str, out: Path, overwrite: bool = False, license: str = "other") -> Path:
    """Write a GAN run's generator to ``out`` in ``format`` (``WRITERS``, or ``hub``: a folder whose model card
    names ``license``)."""
    if format == "hub":
        return export_hub(model, out, license, overwrite)
    check_output_path(out)
    refuse_to_replace([out], overwrite)
    if format == "torchscript":
        log.warning(
            "TorchScript is deprecated (torch 2.14 warns on torch.jit.trace and torch.jit.load): --format pt2 writes "
            "a torch.export program, read with torch.export.load"
        )
    metadata = {"format": FORMAT, "ganforge_version": __version__, "task": model.task} | model.description
    data = WRITERS[format](model.generator, metadata)
    atomic_write(out, lambda file: file.write(data))
    return out
