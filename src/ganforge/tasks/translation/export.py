"""A translation run's exports: one translator as ONNX or safetensors, or every translator as a folder in the
layout of a Hugging Face model repository (``hub``) that ``ganforge.load`` and every command read back.

The ONNX file takes ``images`` (B, C, H, W) in [-1, 1] and gives ``translated`` the same way, with dynamic
batch, height and width (each side a multiple of the network's ``stride``). Each file carries its description
(task, model, direction, stride, training size, output range, whether the weights are the moving average) as
JSON metadata.
"""

from pathlib import Path

import torch
from torch import nn

from ganforge.export import (
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

FORMAT = "ganforge-translator"  # the metadata's and config.json's "format"
SCORES = ("l1", "psnr", "ssim", "cycle_l1", "swd")  # a run's evaluation scores a model card names


def translator_to_onnx(generator: nn.Module, metadata: dict) -> bytes:
    """A translator as ONNX: input ``images`` (B, C, H, W) in [-1, 1], output ``images`` the same way, with
    dynamic batch, height and width (each side a multiple of the network's ``stride``)."""
    require_onnx()
    stride = generator.stride
    example = torch.zeros(2, generator.in_channels, 2 * stride, 3 * stride)  # sides unequal: neither is baked in
    height, width = torch.export.Dim("height_blocks", min=1, max=64), torch.export.Dim("width_blocks", min=1, max=64)
    shapes = {"x": {0: torch.export.Dim("batch", min=1), 2: stride * height, 3: stride * width}}
    program = torch.onnx.export(
        generator,
        (example,),
        input_names=["images"],
        output_names=["translated"],
        dynamic_shapes=shapes,
        dynamo=True,
        verbose=False,
    )
    return onnx_bytes(program, metadata)


def translator_to_pt2(generator: nn.Module, metadata: dict) -> bytes:
    """A translator as a ``torch.export`` program with dynamic batch, height and width: each side a multiple of the
    network's ``stride``, at least two (the exporter specialises a side of one stride, where the U-Net's innermost
    features are 1x1)."""
    stride = generator.stride
    example = torch.zeros(2, generator.in_channels, 2 * stride, 3 * stride)
    height, width = torch.export.Dim("height_blocks", min=2, max=64), torch.export.Dim("width_blocks", min=2, max=64)
    shapes = ({0: torch.export.Dim("batch", min=1), 2: stride * height, 3: stride * width},)
    return exported_program_bytes(generator, (example,), shapes, metadata)


WRITERS = {"pt2": translator_to_pt2, "onnx": translator_to_onnx, "safetensors": to_safetensors}


def plain(generator: nn.Module) -> nn.Module:
    """The translator in float32 and the default memory layout, as files hold it."""
    return generator.float().to(memory_format=torch.contiguous_format)


def export(model: Trained, format: str, out: Path, overwrite: bool, license: str, direction: str) -> Path:
    """Write the ``direction`` translator of ``model`` as pt2, ONNX or safetensors, or all of them as a hub folder."""
    if format == "hub":
        return export_hub(model, out, license, overwrite)
    check_output_path(out)
    refuse_to_replace([out], overwrite)
    generator = model.generator(direction)
    metadata = {"format": FORMAT, "ganforge_version": __version__, "task": model.task}
    metadata |= {"model": model.description["model"], "direction": direction, "stride": generator.stride}
    metadata |= {"image_size": model.config.get("image_size"), "output_range": [-1.0, 1.0]}
    metadata |= {"ema": model.description["ema"]}  # whether the weights are the translator's moving average
    data = WRITERS[format](plain(generator), metadata)
    atomic_write(out, lambda file: file.write(data))
    return out


def export_hub(model: Trained, out: Path, license: str, overwrite: bool) -> Path:
    """``out/``: the first translator (AtoB) as config.json (its constructor arguments at the top, for
    ``PyTorchModelHubMixin``; then the task, model, every translator's arguments, the training config) and
    model.safetensors, with a model card; CycleGAN's second translator the same way in ``out/BtoA/``."""
    description = {"format": FORMAT, "ganforge_version": __version__, "task": model.task} | model.description
    description |= {"config": model.config}
    arguments, stamp = model.description["generator_args"], {"format": FORMAT, "ganforge_version": __version__}
    first, *others = model.generators
    more = {
        name: (
            hub_config(arguments[name], stamp | {"task": model.task, "model": description["model"], "direction": name}),
            to_safetensors(plain(model.generators[name]), stamp),
        )
        for name in others
    }
    weights = to_safetensors(plain(model.generators[first]), stamp)
    card = model_card(model, description, last_evaluation(model.path), license)
    return write_hub_folder(out, hub_config(arguments[first], description), weights, card, overwrite, more)


def model_card(model: Trained, description: dict, evaluation: dict | None, license: str) -> str:
    """A README.md model card: YAML front matter as Hugging Face reads it (library, licence, task, the run's last
    evaluation), then what the translator is and how to use it."""
    config, step, name = description["config"], description["step"], description["model"]
    directions = " and ".join(model.generators)
    front = card_front_matter(license, "image-to-image", ["ganforge", "gan", "pytorch", model.task, name], [])
    body = [
        "",
        f"# {model.task} translator ({name}), step {step:,}",
        "",
        f"A `{name}` translator trained with [ganforge](https://pypi.org/project/ganforge/) as {model.task} for "
        f"{step:,} steps on `{Path(str(config.get('data', 'its data'))).name}` at {config.get('image_size')} px: "
        f"it translates {directions}. The weights are "
        + ("the moving average (EMA) of the translators." if description["ema"] else "the translators' own."),
        "",
        "```python",
        "import ganforge",
        "",
        'translator = ganforge.load("path/to/this/folder")  # no network needed',
        "outputs = translator.translate(images)  # (N, C, H, W) uint8 in and out, any H and W",
        "```",
        "",
        "## Evaluation",
        "",
    ]
    scores = {key: value for key, value in (evaluation or {}).items() if key in SCORES}
    if scores:
        body += [f"The run's last evaluation during training, at step {evaluation['step']:,}, on its test images:"]
        body += ["", "| score | value |", "|---|---|"] + [f"| {key} | {value:.6g} |" for key, value in scores.items()]
    else:
        body.append("The run was not evaluated during training; `ganforge evaluate` scores it.")
    return "\n".join(front + body) + "\n"
