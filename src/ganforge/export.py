"""Export a trained run for use without ganforge: ``export_generator`` loads the run once and asks its task's
handle, which writes the formats its task offers (a GAN's: ``tasks/gan/export.py``; a translator's:
``tasks/translation/export.py``). Here is what the formats share: ONNX and safetensors files with JSON metadata
under ``METADATA_KEY``, and a folder in the layout of a Hugging Face model repository (``hub``: config.json,
model.safetensors, a README.md model card) that ``ganforge.load`` and every command read back.
"""

import io
import json
from pathlib import Path

import torch
import yaml
from torch import nn

from ganforge.checkpoint import HUB_CONFIG, HUB_WEIGHTS, is_hub_folder
from ganforge.config import EXPORT_FORMATS as FORMATS
from ganforge.errors import GanforgeError, UsageError, first_line
from ganforge.files import atomic_write, refuse_to_replace
from ganforge.plots import read_metrics
from ganforge.tasks import Trained, load
from ganforge.tasks.base import check_options
from ganforge.version import __version__

METADATA_KEY = "ganforge"  # the name of the JSON metadata in each format


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


def exported_program_bytes(module: nn.Module, inputs: tuple, dynamic_shapes: tuple, metadata: dict) -> bytes:
    """``module`` as a ``torch.export`` ExportedProgram (a .pt2 file that ``torch.export.load`` reads, and
    ``.module()`` runs without ganforge), with ``metadata`` as the extra file ``ganforge.json``."""
    program = torch.export.export(module.eval(), inputs, dynamic_shapes=dynamic_shapes)
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={f"{METADATA_KEY}.json": json.dumps(metadata)})
    return buffer.getvalue()


def to_safetensors(generator: nn.Module, metadata: dict) -> bytes:
    """The generator's state_dict as safetensors; rebuild with ``MODELS[model].generator(**generator_args)``."""
    try:
        from safetensors.torch import save
    except ImportError:
        raise GanforgeError('safetensors export needs safetensors: pip install "ganforge[export]"') from None
    # safetensors stores dense row-major tensors; the channels-last weights are copied into that layout.
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in generator.state_dict().items()}
    return save(state, metadata={METADATA_KEY: json.dumps(metadata)})


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


def card_front_matter(
    license: str, pipeline_tag: str, tags: list[str], datasets: list[str], results: dict | None = None
) -> list[str]:
    """A model card's YAML front matter, between its --- lines: written by ``huggingface_hub``'s ``ModelCardData``
    (and ``EvalResult`` for ``results``: name, task, dataset_name, dataset_type, metrics as (type, value, name))
    where that library is installed, and identically by PyYAML without it (``tests/test_hub_mixin.py``)."""
    metrics = (results or {}).get("metrics", [])
    try:
        from huggingface_hub import EvalResult, ModelCardData
    except ImportError:
        front = {"datasets": datasets} if datasets else {}
        front |= {"library_name": "ganforge", "license": license, "pipeline_tag": pipeline_tag, "tags": tags}
        if metrics:
            dataset = {"name": results["dataset_name"], "type": results["dataset_type"]}
            found = [{"type": kind, "value": value, "name": name} for kind, value, name in metrics]
            entry = {"task": {"type": results["task"]}, "dataset": dataset, "metrics": found}
            front["model-index"] = [{"name": results["name"], "results": [entry]}]
        text = yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip()
    else:
        evaluations = [
            EvalResult(
                task_type=results["task"],
                dataset_type=results["dataset_type"],
                dataset_name=results["dataset_name"],
                metric_type=kind,
                metric_value=value,
                metric_name=name,
            )
            for kind, value, name in metrics
        ]
        data = ModelCardData(
            datasets=datasets or None,
            library_name="ganforge",
            license=license,
            pipeline_tag=pipeline_tag,
            tags=tags,
            model_name=results["name"] if evaluations else None,
            eval_results=evaluations or None,
        )
        text = data.to_yaml()
    return ["---", *text.splitlines(), "---"]


def hub_config(constructor: dict, description: dict) -> dict:
    """config.json of a hub folder: the network's constructor arguments at the top, as ``huggingface_hub``'s
    ``PyTorchModelHubMixin`` passes them to ``__init__`` (so a mixin subclass of the model's class loads the
    folder), then ganforge's own description beside them (which reads only its own keys: where a name is both,
    the constructor's value stays at the top, and ganforge's copy is in ``generator_args``)."""
    return dict(constructor) | {key: value for key, value in description.items() if key not in constructor}


def write_hub_folder(
    out: Path, description: dict, weights: bytes, card: str, overwrite: bool, more: dict | None = None
) -> Path:
    """Write ``out/`` in a Hugging Face model repository's layout: ``description`` as config.json, ``weights``
    (safetensors bytes) as model.safetensors, ``card`` as README.md; ``more``: a subfolder each, with its own
    config.json and model.safetensors, by name (a run's second network)."""
    more = more or {}
    if out.exists() and not out.is_dir():
        raise GanforgeError(f"cannot write {out}: it is a file; --format hub writes a folder")
    if not out.parent.is_dir():
        raise GanforgeError(f"cannot write {out}: the folder {out.parent} does not exist")
    paths = [out / HUB_CONFIG, out / HUB_WEIGHTS, out / "README.md"]
    refuse_to_replace(paths + [out / name / file for name in more for file in (HUB_CONFIG, HUB_WEIGHTS)], overwrite)
    try:
        out.mkdir(exist_ok=True)
        for name in more:
            (out / name).mkdir(exist_ok=True)
    except OSError as error:
        raise GanforgeError(f"cannot write {out}: {error.strerror or error}") from None
    as_json = lambda value: json.dumps(value, indent=2).encode() + b"\n"  # noqa: E731
    for name, (config, data) in more.items():
        atomic_write(out / name / HUB_WEIGHTS, lambda file, data=data: file.write(data))
        atomic_write(out / name / HUB_CONFIG, lambda file, config=config: file.write(as_json(config)))
    atomic_write(paths[1], lambda file: file.write(weights))
    atomic_write(paths[0], lambda file: file.write(as_json(description)))
    atomic_write(paths[2], lambda file: file.write(card.encode()))
    return out


def push_hub_folder(folder: str | Path, repo: str, private: bool = False) -> str:
    """Upload an ``export --format hub`` folder to the Hugging Face model repository ``repo`` (created when it does
    not exist) with ``huggingface_hub``; returns the repository's URL. One line for a folder that is not one, a
    missing library, or the Hub refusing (no token, no network, no right to the repository)."""
    folder = Path(folder)
    if not is_hub_folder(folder):
        raise GanforgeError(f"{folder} is not a folder that ganforge export --format hub wrote (no config.json and "
                            f"model.safetensors)")  # fmt: skip
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise GanforgeError("ganforge push needs huggingface_hub: pip install huggingface_hub") from None
    api = HfApi()
    try:
        url = api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(folder), repo_id=repo, repo_type="model", commit_message=f"ganforge {__version__}"
        )
    except Exception as error:  # huggingface_hub's HTTP and validation errors, a network that is not there
        raise GanforgeError(f"cannot push {folder} to {repo}: {first_line(error)}") from None
    return str(url)


def export_generator(
    source: str | Path | Trained, format: str, out: str | Path, overwrite: bool = False, **options
) -> Path:
    """Write the model of a run directory, checkpoint, exported folder or ``load``-ed run to ``out`` in ``format``.

    ``format`` is one its task offers (``FORMATS`` holds them all): a GAN's generator as torchscript, onnx,
    safetensors or hub; a translator as onnx, safetensors or hub. ``options``: ``license`` (hub: its model
    card's), ``direction`` (a run that translates both ways: which of its translators).

    >>> export_generator("runs/my-run", "onnx", "generator.onnx")
    PosixPath('generator.onnx')
    >>> folder = export_generator("runs/my-run", "hub", "my-gan/")  # then ganforge.load("my-gan/")
    """
    if format not in FORMATS:
        raise UsageError(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    model = load(source, "cpu", command="export")  # one read; the moving averages (EMA) when the run kept them
    if format not in model.export_formats:
        offered = ", ".join(model.export_formats[:-1]) + f" or {model.export_formats[-1]}"
        raise UsageError(f"a {model.task} run exports as {offered}, not {format}")
    check_options(model.export, options, "export", model.task)
    return model.export(format, Path(out), overwrite, **options)
