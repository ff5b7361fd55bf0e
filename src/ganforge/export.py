"""Export a trained generator for use without ganforge: TorchScript, ONNX or safetensors; or as a folder in the
layout of a Hugging Face model repository (``hub``: config.json, model.safetensors, a README.md model card) that
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
import warnings
from pathlib import Path

import torch
from torch import nn

from ganforge.checkpoint import HUB_CONFIG, HUB_FORMAT, HUB_WEIGHTS, TranslationRunError
from ganforge.config import EXPORT_FORMATS as FORMATS
from ganforge.data import resolve_source
from ganforge.errors import GanforgeError, UsageError
from ganforge.files import atomic_write, refuse_to_replace
from ganforge.plots import read_metrics
from ganforge.sampling import TrainedGenerator, load
from ganforge.version import __version__

METADATA_KEY = "ganforge"  # the name of the JSON metadata in each format


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


def require_onnx() -> None:
    """A one-line error unless onnx and onnxscript (torch's exporter needs both) are installed."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise GanforgeError('ONNX export needs onnx and onnxscript: pip install "ganforge[export]"') from None


def onnx_bytes(program, metadata: dict) -> bytes:
    """An exported ONNX program as bytes, with ``metadata`` as JSON under ``METADATA_KEY``."""
    model = program.model_proto
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    return model.SerializeToString()


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


def export_translator(path: Path, format: str, out: Path, overwrite: bool, direction: str) -> Path:
    """Write the ``direction`` translator of the translation checkpoint ``path`` as ONNX or safetensors."""
    from ganforge.translation import load_translator

    if format not in ("onnx", "safetensors"):
        raise UsageError(f"a translation run exports as onnx or safetensors, not {format}")
    check_output_path(out)
    refuse_to_replace([out], overwrite)
    model = load_translator(path, "cpu")
    generator = model.generator(direction)
    metadata = {"format": "ganforge-translator", "ganforge_version": __version__, "task": model.task}
    metadata |= {"model": model.config["model"], "direction": direction, "stride": generator.stride}
    metadata |= {"image_size": model.config["image_size"], "output_range": [-1.0, 1.0]}
    metadata |= {"ema": bool(model.config.get("ema"))}  # the weights are the translator's moving average
    write = translator_to_onnx if format == "onnx" else to_safetensors
    data = write(generator.float().to(memory_format=torch.contiguous_format), metadata)
    atomic_write(out, lambda file: file.write(data))
    return out


def to_safetensors(generator: nn.Module, metadata: dict) -> bytes:
    """The generator's state_dict as safetensors; rebuild with ``MODELS[model].generator(**generator_args)``."""
    try:
        from safetensors.torch import save
    except ImportError:
        raise GanforgeError('safetensors export needs safetensors: pip install "ganforge[export]"') from None
    # safetensors stores dense row-major tensors; the channels-last weights are copied into that layout.
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in generator.state_dict().items()}
    return save(state, metadata={METADATA_KEY: json.dumps(metadata)})


WRITERS = {"torchscript": to_torchscript, "onnx": to_onnx, "safetensors": to_safetensors}


def check_output_path(out: Path) -> None:
    """Refuse, before any work, an output that is a folder or lies in a folder that does not exist."""
    if out.is_dir():
        raise GanforgeError(f"cannot write {out}: it is a folder; give a file name")
    if not out.parent.is_dir():
        raise GanforgeError(f"cannot write {out}: the folder {out.parent} does not exist")


def last_evaluation(checkpoint: Path) -> dict | None:
    """The newest periodic evaluation (``--eval-every``) of the run a checkpoint belongs to, at or before the
    checkpoint's step; None for a checkpoint outside a run or a run never evaluated."""
    run_dir = checkpoint.parent.parent
    if checkpoint.parent.name != "checkpoints" or not (run_dir / "metrics.jsonl").is_file():
        return None
    _, evaluations, _ = read_metrics(run_dir)
    step = load_step(checkpoint)
    earlier = [record for record in evaluations if step is None or record["step"] <= step]
    return earlier[-1] if earlier else None


def load_step(checkpoint: Path) -> int | None:
    """The step in a checkpoint's file name (ckpt_00001000.pt), or None (best.pt, a renamed file)."""
    digits = checkpoint.stem.removeprefix("ckpt_")
    return int(digits) if checkpoint.stem.startswith("ckpt_") and digits.isdigit() else None


def model_card(description: dict, evaluation: dict | None, license: str) -> str:
    """A README.md model card: YAML front matter as Hugging Face reads it (library, licence, dataset, the
    evaluation in model-index form, its extractor named), then what the model is and how to sample it."""
    config, step = description["config"], description["step"]
    data = str(config.get("data", "unknown data"))
    try:
        builtin = not resolve_source(data).is_path  # a dataset with a name, such as mnist
    except GanforgeError:  # a folder or file that is no longer there
        builtin = False
    task = "image-generation" if description["num_classes"] else "unconditional-image-generation"
    front = ["---", "library_name: ganforge", f"license: {license}", f"pipeline_tag: {task}"]
    front += ["tags:", "- ganforge", "- gan", "- pytorch", f"- {description['model']}"]
    if builtin:
        front += ["datasets:", f"- {data}"]
    if evaluation:
        extractor, samples = evaluation.get("features", "unknown"), evaluation.get("samples", "?")
        front += [
            "model-index:",
            f"- name: {description['model']}-{data if builtin else 'custom'}-{step}",
            "  results:",
            f"  - task: {{type: {task}}}",
            f"    dataset: {{name: {json.dumps(data)}, type: {json.dumps(data if builtin else 'custom')}}}",
            "    metrics:",
        ]
        for name in ("fid", "kid", "precision", "recall"):
            if isinstance(evaluation.get(name), (int, float)):
                label = f"{name.upper() if name in ('fid', 'kid') else name} on {extractor} features, {samples} samples"
                front.append(f"    - {{type: {name}, value: {evaluation[name]:.6g}, name: {json.dumps(label)}}}")
    front.append("---")
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


def export_hub(model: TrainedGenerator, out: Path, license: str, overwrite: bool) -> Path:
    """Write ``out/`` in a Hugging Face model repository's layout: config.json, model.safetensors, README.md."""
    if out.exists() and not out.is_dir():
        raise GanforgeError(f"cannot write {out}: it is a file; --format hub writes a folder")
    if not out.parent.is_dir():
        raise GanforgeError(f"cannot write {out}: the folder {out.parent} does not exist")
    paths = [out / HUB_CONFIG, out / HUB_WEIGHTS, out / "README.md"]
    refuse_to_replace(paths, overwrite)
    description = {"format": HUB_FORMAT, "ganforge_version": __version__} | model.description
    description |= {"classes": model.classes, "config": model.config}
    card = model_card(description, last_evaluation(model.path), license)
    weights = to_safetensors(model.generator, {"format": HUB_FORMAT, "ganforge_version": __version__})
    out.mkdir(exist_ok=True)
    atomic_write(paths[1], lambda file: file.write(weights))
    atomic_write(paths[0], lambda file: file.write(json.dumps(description, indent=2).encode() + b"\n"))
    atomic_write(paths[2], lambda file: file.write(card.encode()))
    return out


def export_generator(
    source: str | Path | TrainedGenerator,
    format: str,
    out: str | Path,
    overwrite: bool = False,
    license: str = "other",
    direction: str = "AtoB",
) -> Path:
    """Write the generator of a run directory, checkpoint or ``load``-ed generator to ``out`` in ``format``.

    ``format`` is one of FORMATS; ``hub`` writes a folder (``license`` goes into its model card). A translation
    run (pix2pix, CycleGAN) exports its ``direction`` translator as onnx or safetensors.

    >>> export_generator("runs/my-run", "onnx", "generator.onnx")
    >>> export_generator("runs/my-run", "hub", "my-gan/")  # then ganforge.load("my-gan/")
    """
    if format not in FORMATS:
        raise UsageError(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    out = Path(out)
    try:
        model = load(source, "cpu")  # one read; the moving average (EMA) when the run kept one
    except TranslationRunError as run:
        return export_translator(run.path, format, out, overwrite, direction)
    if format == "hub":
        return export_hub(model, out, license, overwrite)
    check_output_path(out)
    refuse_to_replace([out], overwrite)
    metadata = {"format": "ganforge-generator", "ganforge_version": __version__} | model.description
    data = WRITERS[format](model.generator, metadata)
    atomic_write(out, lambda file: file.write(data))
    return out
