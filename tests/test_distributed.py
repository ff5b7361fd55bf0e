"""Training under torchrun: two CPU processes (gloo) against one process with the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganforge import TrainConfig, load_checkpoint, train
from ganforge.config import config_to_dict
from ganforge.tasks.gan.training import GANTrainer as GANTask
from test_training import QUIET, assert_equal_up_to_rounding, assert_same_tensors, make_digits_folder

# Each rank of a torchrun run trains, then saves the weights it ended with and the real images of each step.
WORKER = """
import json, os, sys
import torch
from ganforge import TrainConfig, train
from ganforge.tasks.gan.training import GANTrainer as GANTask

reals, next_batch = [], GANTask.next_batch
def recording_next_batch(self, step):
    batch = next_batch(self, step)
    reals.append(batch.real.clone())
    return batch
GANTask.next_batch = recording_next_batch

result = train(TrainConfig.from_dict(json.loads(sys.argv[1])))
weights = {"generator": result.generator.state_dict(), "discriminator": result.discriminator.state_dict()}
torch.save({"step": result.step, "reals": reals, **weights}, os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"))
"""


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 ARGS`` with one thread per process."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    environment = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)


def train_two_processes(tmp_path: Path, config: TrainConfig) -> list[dict]:
    """Train ``config`` with two processes; the weights each rank ended with."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    values = config_to_dict(config)
    done = torchrun(str(script), json.dumps(values), str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]


def parameters_of(state: dict) -> dict:
    """A state dict without BatchNorm's running statistics.

    Each rank's BatchNorm updates them from its own shard; DDP copies rank 0's
    over them after forwards that ran with gradients, and rank 0's are saved.
    """
    return {name: t for name, t in state.items() if "running_" not in name and "num_batches_tracked" not in name}


@pytest.mark.slow
def test_two_processes_take_the_same_steps_as_one_with_the_whole_batch(tmp_path, monkeypatch):
    """Conditional MLP with EMA and lazy R1: each rank trains half of every batch of 16."""
    data = make_digits_folder(tmp_path)
    # No EMA warm-up and a half-life of one batch: each update's decay, 0.5 ** (images / 16), depends on the
    # images counted per step, so an EMA that counted only its own rank's 8 would average with another decay.
    ema = dict(ema=True, ema_warmup=0.0, ema_half_life=16.0)
    # float32: bf16's rounding (what auto picks on some CPUs) of two shards' sums against one batch's exceeds the bound.
    common = dict(model="mlp", data=str(data), conditional=True, r1=1.0, r1_every=2, batch_size=16, steps=6, **ema)
    common["precision"] = "32"
    ranks = train_two_processes(tmp_path, TrainConfig(out=str(tmp_path / "two"), **common, **QUIET))
    assert ranks[0]["step"] == ranks[1]["step"] == 6
    for network in ("generator", "discriminator"):
        assert_same_tensors(ranks[0][network], ranks[1][network])  # DDP keeps the ranks bit-identical

    reals = []
    next_batch = GANTask.next_batch
    monkeypatch.setattr(GANTask, "next_batch", lambda self, step: reals.append(next_batch(self, step)) or reals[-1])
    single = train(TrainConfig(out=str(tmp_path / "one"), **common, **QUIET))
    # Each rank trained on its own half of the step's batch: rank 0 the first 8 images, rank 1 the other 8.
    assert len(reals) == len(ranks[0]["reals"]) == len(ranks[1]["reals"]) == 6
    for step, batch in enumerate(reals):
        assert ranks[0]["reals"][step].shape[0] == ranks[1]["reals"][step].shape[0] == 8
        assert torch.equal(torch.cat([ranks[0]["reals"][step], ranks[1]["reals"][step]]), batch.real), step
    initial = load_checkpoint(tmp_path / "one" / "checkpoints" / "ckpt_00000000.pt")
    for network in ("generator", "discriminator"):
        saved = initial[f"{network}s"][network]
        assert_equal_up_to_rounding(ranks[0][network], getattr(single, network).state_dict(), saved)
    # The EMA generator counted every rank's images.
    two, one = (load_checkpoint(tmp_path / name) for name in ("two", "one"))
    assert_equal_up_to_rounding(
        two["ema_generators"]["generator"], one["ema_generators"]["generator"], initial["generators"]["generator"]
    )


@pytest.mark.slow
def test_batchnorm_and_the_gradient_penalty_keep_the_ranks_identical(tmp_path):
    data = make_digits_folder(tmp_path)
    config = TrainConfig(
        model="dcgan",
        data=str(data),
        loss="wgan-gp",
        n_critic=2,
        batch_size=8,
        steps=4,
        out=str(tmp_path / "run"),
        **QUIET,
    )
    ranks = train_two_processes(tmp_path, config)
    initial = load_checkpoint(tmp_path / "run" / "checkpoints" / "ckpt_00000000.pt")
    for network in ("generator", "discriminator"):
        assert_same_tensors(parameters_of(ranks[0][network]), parameters_of(ranks[1][network]))
        assert not torch.equal(ranks[0][network]["net.0.weight"], initial[f"{network}s"][network]["net.0.weight"])


@pytest.mark.slow
def test_torchrun_cli_resumes_a_two_process_run_exactly(tmp_path):
    data = make_digits_folder(tmp_path)
    flags = ["--model", "mlp", "--data", str(data), "--batch-size", "8", "--no-progress", "--no-tensorboard"]
    flags += ["--log-every", "2", "--image-size", "28"]  # 28 px: evaluations use the shipped digits classifier
    evaluating = ["--eval-every", "4", "--eval-samples", "10"]  # on rank 0; the others wait for it
    whole = torchrun("-m", "ganforge", "train", *flags, *evaluating, "--steps", "8", "--out", "whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    first = torchrun("-m", "ganforge", "train", *flags, "--steps", "4", "--out", "split", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    second = torchrun("-m", "ganforge", "train", "--resume", "split", "--steps", "8", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]

    resumed, uninterrupted = load_checkpoint(tmp_path / "split"), load_checkpoint(tmp_path / "whole")
    assert resumed["step"] == uninterrupted["step"] == 8
    for networks in ("generators", "discriminators"):
        assert_same_tensors(resumed[networks], uninterrupted[networks])
    # Only rank 0 writes: one metrics line per report, no line twice.
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8]
    records = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("event") == "eval"] == [4, 8]
    assert "x 2 processes" in first.stderr


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--batch-size", "7"], "--batch-size 7 is the global batch and must divide evenly among the 2 processes"),
        (["--model", "dcgan", "--batch-size", "8", "--sync-bn"], "--sync-bn needs CUDA GPUs"),
    ],
)
@pytest.mark.slow
def test_bad_distributed_settings_give_one_line_errors(tmp_path, flags, message):
    data = make_digits_folder(tmp_path)
    done = torchrun(
        "-m", "ganforge", "train", "--data", str(data), "--steps", "2", "--no-progress", *flags, cwd=tmp_path
    )
    assert done.returncode != 0
    assert f"ganforge: error: {message}" in done.stderr
    assert "Traceback" not in done.stderr.split("ganforge: error")[0]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["pix2pix", "cyclegan"])
def test_translation_under_torchrun_takes_the_steps_of_one_process(tmp_path, task):
    """Two processes (gloo) each translate half of every batch; their translators translate as one process's with
    the whole batch does, as near as two single-process runs that differ only in rounding (--threads 1 and 2).

    Rounding is the yardstick: Adam turns the rounding of a gradient near zero into a step of the whole learning
    rate, and a GAN's steps amplify it (after 4 CycleGAN steps, one thread against two already moves the outputs
    by 5 to 10 levels of 255); a wrong split of the batch moves them as far as training does. Without dropout and
    the history of fakes: each rank draws those for its own half."""
    from ganforge.tasks.translation.data import load_translation_data
    from ganforge.tasks.translation.handle import load_translator
    from test_translation import side_by_side_folder

    data = side_by_side_folder(tmp_path / "data", train=8, test=2)
    flags = ["--task", task, "--data", str(data), "--image-size", "32", "--load-size", "36", "--width", "8"]
    flags += ["--batch-size", "4", "--steps", "4", "--lr", "1e-3", "--no-dropout", "--no-progress", "--no-tensorboard"]
    flags += ["--sample-every", "0"] + (["--pool-size", "0"] if task == "cyclegan" else [])
    two = torchrun("-m", "ganforge", "train", *flags, "--out", "two", cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "x 2 processes" in two.stderr
    for threads in ("1", "2"):
        one = subprocess.run(
            [sys.executable, "-m", "ganforge", "train", *flags, "--threads", threads, "--out", f"one-{threads}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert one.returncode == 0, one.stderr[-3000:]
    assert load_checkpoint(tmp_path / "two")["step"] == 4
    _, test, _ = load_translation_data(data, "AtoB", 36, 32, None, 0.1, need_pairs=False, test_only=True)
    runs = ["two", "one-1", "one-2", "one-1/checkpoints/ckpt_00000000.pt"]
    two, one, rounded, initial = (load_translator(tmp_path / run, "cpu") for run in runs)
    for direction, images in [("AtoB", test.a), ("BtoA", test.b)][: len(one.generators)]:
        out = [run.translate(images, direction).float() for run in (two, one, rounded, initial)]
        apart = lambda x, y: (x - y).abs().mean().item()  # noqa: E731  (levels of 255)
        distributed, rounding, trained = apart(out[0], out[1]), apart(out[2], out[1]), apart(out[1], out[3])
        assert distributed <= max(3 * rounding, 1.0) and distributed < 0.3 * trained, (distributed, rounding, trained)
