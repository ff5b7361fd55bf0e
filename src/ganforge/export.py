"""Export a trained generator for use without ganforge: TorchScript, ONNX or safetensors.

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

from ganforge.config import EXPORT_FORMATS as FORMATS
from ganforge.errors import GanforgeError, UsageError
from ganforge.files import atomic_write, refuse_to_replace
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
    try:
        import onnx  # noqa: F401  (torch's exporter needs onnx and onnxscript)
        import onnxscript  # noqa: F401
    except ImportError:
        raise GanforgeError('ONNX export needs onnx and onnxscript: pip install "ganforge[export]"') from None
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
    model = program.model_proto
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    return model.SerializeToString()


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


def export_generator(
    source: str | Path | TrainedGenerator, format: str, out: str | Path, overwrite: bool = False
) -> Path:
    """Write the generator of a run directory, checkpoint or ``load``-ed generator to ``out`` in ``format``.

    ``format`` is one of FORMATS.

    >>> export_generator("runs/my-run", "onnx", "generator.onnx")
    """
    if format not in FORMATS:
        raise UsageError(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    out = Path(out)
    check_output_path(out)
    refuse_to_replace([out], overwrite)
    model = load(source, "cpu")  # one read; the moving average (EMA) when the run kept one
    metadata = {"format": "ganforge-generator", "ganforge_version": __version__} | model.description
    data = WRITERS[format](model.generator, metadata)
    atomic_write(out, lambda file: file.write(data))
    return out
