import dataclasses
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ganforge.checkpoint import load_checkpoint, resolve_checkpoint
from ganforge.cli import config_fields, main
from ganforge.config import TrainConfig
from ganforge.settings import flag
from ganforge.tasks.translation import Pix2PixSettings


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny mlp run on the embedded MNIST subset (no data root needed)."""
    run = tmp_path_factory.mktemp("cli") / "run"
    empty_root = tmp_path_factory.mktemp("empty-root")
    code = main(
        [
            "train",
            "--model",
            "mlp",
            "--steps",
            "20",
            "--batch-size",
            "16",
            "--out",
            str(run),
            "--data-root",
            str(empty_root),
            "--no-download",
            "--no-progress",
            "--no-tensorboard",
        ]
    )
    assert code == 0
    return run


def test_help_lists_every_config_flag_with_its_default(capsys):
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0
    text = " ".join(out.split())
    fields = [field for field, _ in config_fields()]  # the shared ones and every task's own
    assert len(fields) > len(dataclasses.fields(TrainConfig)) + len(dataclasses.fields(Pix2PixSettings))
    for field in fields:
        assert f"--{flag(field.name)}" in text
    assert text.count("(default:") >= len(fields)
    assert "--task pix2pix and cyclegan:" in text and "--task gan:" in text  # the tasks' own flags, grouped
    code, out, _ = run_cli(capsys, "generate", "--help")
    assert code == 0 and "--seed" in out and "(default: 64)" in out


def test_train_without_data_uses_the_embedded_subset_and_fills_the_run_dir(trained_run):
    assert (trained_run / "config.yaml").read_text().count("model: mlp") == 1
    assert (trained_run / "checkpoints" / "latest").read_text().strip() == "ckpt_00000020.pt"
    assert any((trained_run / "samples").iterdir())
    assert load_checkpoint(trained_run)["num_images"] == 10_000  # the subset's; real MNIST has 60,000


def test_generate_writes_each_output_format(capsys, trained_run, tmp_path):
    code, out, _ = run_cli(capsys, "generate", trained_run, "--n", "9", "--out", tmp_path / "grid.png")
    assert code == 0 and "wrote 9 images" in out and (tmp_path / "grid.png").is_file()

    assert run_cli(capsys, "generate", trained_run, "--n", "5", "--seed", "3", "--out", tmp_path / "a.npz")[0] == 0
    assert run_cli(capsys, "generate", trained_run, "--n", "5", "--seed", "3", "--out", tmp_path / "b.npz")[0] == 0
    a, b = np.load(tmp_path / "a.npz")["images"], np.load(tmp_path / "b.npz")["images"]
    assert a.shape == (5, 1, 28, 28) and a.dtype == np.uint8 and np.array_equal(a, b)

    assert run_cli(capsys, "generate", trained_run, "--n", "3", "--out", f"{tmp_path}/pngs/")[0] == 0
    assert len(list((tmp_path / "pngs").glob("*.png"))) == 3


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["train", "--model", "stylegan9"], 2, "invalid choice: 'stylegan9'"),
        (["train", "--data", "imagenet-42"], 2, "neither a known dataset"),
        (["train", "--batch-size", "zero"], 2, "invalid int value"),
        (["train", "--steps", "0"], 2, "--steps must be at least 1"),
        (["train", "--data-root", "/no/such/root", "--steps", "1"], 1, "data root /no/such/root does not exist"),
        (["generate", "/no/such/run"], 1, "no such run directory or checkpoint"),
        (["generate", "/no/such/run", "--n", "0"], 2, "--n: must be at least 1"),
        (["train", "--checkpoint-every", "0.5"], 2, "whole number of steps"),
    ],
)
def test_bad_input_is_one_clear_line(capsys, args, code, message):
    exit_code, _, err = run_cli(capsys, *args)
    assert exit_code == code
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_empty_folder_and_foreign_checkpoint_are_one_line_errors(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "train", "--data", tmp_path / "empty", "--out", tmp_path / "run", "--no-progress")
    assert code == 1 and "no images" in err and "Traceback" not in err

    torch.save({"state_dict": torch.zeros(2)}, tmp_path / "foreign.pt")
    code, _, err = run_cli(capsys, "generate", tmp_path / "foreign.pt")
    assert code == 1 and err.strip() == f"ganforge: error: {tmp_path / 'foreign.pt'} is not a ganforge checkpoint"


def test_corrupt_image_is_skipped_with_a_warning_through_the_cli(capsys, tmp_path):
    from PIL import Image

    folder = tmp_path / "images" / "only-class"
    folder.mkdir(parents=True)
    for index in range(8):
        Image.fromarray(np.full((12, 12), index * 30, dtype=np.uint8), "L").save(folder / f"{index}.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code, _, err = run_cli(
        capsys,
        "train",
        "--model",
        "mlp",
        "--data",
        tmp_path / "images",
        "--image-size",
        "12",
        "--batch-size",
        "4",
        "--steps",
        "2",
        "--out",
        tmp_path / "run",
        "--no-progress",
    )
    assert code == 0
    assert f"skipping unreadable image {folder / 'corrupt.png'}" in err


def test_checkpoint_of_another_architecture_is_a_one_line_error(capsys, trained_run, tmp_path):
    checkpoint = torch.load(resolve_checkpoint(trained_run), weights_only=True)
    checkpoint["model"] = "dcgan"  # mlp weights under a DCGAN label
    torch.save(checkpoint, tmp_path / "relabelled.pt")
    code, _, err = run_cli(capsys, "generate", tmp_path / "relabelled.pt", "--out", tmp_path / "x.png")
    assert code == 1 and "do not fit the architecture" in err and len(err.strip().splitlines()) == 1


def test_resume_with_a_different_model_is_refused(capsys, trained_run):
    code, _, err = run_cli(capsys, "train", "--resume", trained_run, "--model", "dcgan")
    assert code == 2 and "--model cannot change when resuming" in err


def test_unwritable_outputs_are_one_line_errors(capsys, trained_run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    code, _, err = run_cli(capsys, "generate", trained_run, "--out", blocker / "grid.png")
    assert code == 1 and "cannot write" in err
    root = tmp_path / "root"
    root.mkdir()
    args = ["--model", "mlp", "--data-root", root, "--no-download", "--no-progress"]
    code, _, err = run_cli(capsys, "train", "--out", blocker / "run", *args)
    assert code == 1 and "cannot create run directory" in err


@pytest.mark.slow
def test_python_dash_m_runs_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ganforge", "generate", str(tmp_path / "nothing.pt")], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("ganforge: error: no such run directory")
    debug = subprocess.run(
        [sys.executable, "-m", "ganforge", "generate", "--debug", str(tmp_path / "nothing.pt")],
        capture_output=True,
        text=True,
    )
    assert "Traceback" in debug.stderr


def test_resume_command_continues_a_run_to_a_new_length(capsys, trained_run):
    code, _, err = run_cli(capsys, "resume", trained_run, "--steps", "25", "--no-progress")
    assert code == 0, err
    assert "resuming at step 20" in err
    assert torch.load(resolve_checkpoint(trained_run), weights_only=True)["step"] == 25


def test_interpolate_writes_a_looping_gif_of_steps_frames(capsys, trained_run, tmp_path):
    code, out, _ = run_cli(capsys, "interpolate", trained_run, "--steps", "9", "--n", "3", "--out", tmp_path / "w.gif")
    assert code == 0 and "wrote 9 frames" in out
    with Image.open(tmp_path / "w.gif") as gif:
        assert gif.n_frames == 9 and gif.size == (2 + 3 * 30, 2 + 30) and gif.info["loop"] == 0


def test_plot_and_export_commands_write_their_files(capsys, trained_run, tmp_path):
    code, out, _ = run_cli(capsys, "plot", trained_run)
    assert code == 0 and out.count("wrote") == 2 and (trained_run / "plots" / "losses.png").is_file()
    code, out, _ = run_cli(capsys, "export", trained_run, "--format", "safetensors", "--out", tmp_path / "g.st")
    assert code == 0 and "as safetensors" in out
    from safetensors.torch import load_file

    exported = load_file(str(tmp_path / "g.st"))
    generator = load_checkpoint(trained_run)["generators"]["generator"]
    assert exported.keys() == generator.keys() and all(torch.equal(exported[k], generator[k]) for k in generator)


def test_import_ganforge_loads_neither_the_web_nor_the_plotting_libraries():
    code = "import sys, ganforge; print(sorted({'fastapi', 'uvicorn', 'matplotlib', 'onnx'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys\n"
        "from ganforge.cli import build_parser, main\n"
        "build_parser()\n"
        "for argv in (['--version'], ['train', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, argv\n"
        "print(sorted({'torch', 'numpy'} & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "[]"


def test_python_dash_m_help_answers_quickly():
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "ganforge", "--help"], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    print(f"python -m ganforge --help: {seconds:.2f} s")
    assert result.returncode == 0 and "train" in result.stdout
    assert seconds < 5  # generous: torch alone takes seconds to import, --help takes a tenth of one


def test_config_file_and_flags_resolve_in_print_config(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("model: mlp\nz_dim: 32\nout: somewhere-old\n")
    code, out, err = run_cli(capsys, "train", "--config", "mine.yaml", "--lr", "0.01", "--print-config")
    assert code == 0, err
    config = yaml.safe_load(out)
    assert config["model"] == "mlp" and config["gan"]["z_dim"] == 32  # from the file, flat or in its section
    assert config["lr"] == 0.01 and config["g_lr"] == 0.01  # the flag, and what follows from it
    assert config["batch_size"] == 128 and config["width"] == 128  # the model's defaults, filled
    assert config["out"] is None and config["image_size"] is None  # a fresh run directory; the data's size
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mine.yaml"]  # no run directory


def test_train_with_a_config_file_trains_what_the_file_says(capsys, tmp_path, monkeypatch):
    """Not only --print-config (review turn 3, row 22): the run's config.yaml and its generator have the file's
    values, the flags' too, and the file's ``out`` is not where it writes."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("model: mlp\nz_dim: 32\nbatch_size: 8\nout: somewhere-old\n")
    offline = ["--data-root", tmp_path / "empty", "--no-download", "--no-progress", "--no-tensorboard"]
    (tmp_path / "empty").mkdir()  # no MNIST there: the embedded subset
    code, _, err = run_cli(capsys, "train", "--config", "mine.yaml", "--out", "run", "--steps", "2", *offline)
    assert code == 0, err
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["model"], saved["gan"]["z_dim"], saved["batch_size"], saved["steps"]) == ("mlp", 32, 8, 2)
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint["step"] == 2 and checkpoint["generator_args"]["generator"]["z_dim"] == 32
    assert not (tmp_path / "somewhere-old").exists()


def test_a_runs_config_yaml_starts_a_new_run_elsewhere(capsys, trained_run):
    code, out, err = run_cli(capsys, "train", "--config", trained_run / "config.yaml", "--print-config")
    assert code == 0, err
    config = yaml.safe_load(out)
    assert config["model"] == "mlp" and config["batch_size"] == 16 and config["out"] is None
    code, out, err = run_cli(
        capsys, "train", "--config", trained_run / "config.yaml", "--out", trained_run, "--print-config"
    )
    assert code == 0 and yaml.safe_load(out)["out"] == str(trained_run) and not yaml.safe_load(out)["overwrite"]


def test_a_config_file_with_another_task_given_on_the_command_line(capsys, tmp_path):
    """--task other than the file's keeps the file's shared fields and the new task's section when it has one
    (review turn 3 rerun: the file's `gan:` values were dropped silently); the file's own task's section goes."""
    (tmp_path / "both.yaml").write_text("task: pix2pix\nsteps: 7\npix2pix:\n  lambda_l1: 50.0\ngan:\n  z_dim: 7\n")
    code, out, err = run_cli(capsys, "train", "--config", tmp_path / "both.yaml", "--task", "gan", "--print-config")
    assert code == 0, err
    config = yaml.safe_load(out)
    assert config["task"] == "gan" and config["steps"] == 7 and config["gan"]["z_dim"] == 7 and "pix2pix" not in config


@pytest.mark.parametrize(
    "text,message",
    [
        ("model: mlp\nlearning_rate: 0.1\n", "unknown config keys: learning_rate"),
        ("steps: many\n", "config value steps: 'many' is not a whole number"),
        ("task: pix2pix\nlambda_l1: [1, 2]\n", "config value lambda_l1: [1, 2] is not a number"),
        ("- not\n- a mapping\n", "does not hold a ganforge config"),
    ],
)
def test_bad_config_file_is_one_line_and_exit_2(capsys, tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    code, _, err = run_cli(capsys, "train", "--config", tmp_path / "bad.yaml", "--print-config")
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_debug_works_before_and_after_the_command(capsys):
    from ganforge.cli import build_parser

    assert build_parser().parse_args(["--debug", "plot", "run"]).debug
    assert build_parser().parse_args(["plot", "run", "--debug"]).debug
    assert not hasattr(build_parser().parse_args(["plot", "run"]), "debug")


def test_print_config_fed_back_trains_colour_data_with_the_colour_recipe(capsys, tmp_path):
    """--print-config printed the grayscale recipe (loss: nonsaturating, diffaug: false) for colour data, and fed
    back with --config it trained that recipe: what the data decide now stays null until they are read."""
    import numpy as np

    rng = np.random.default_rng(0)
    for name in ("red", "blue"):
        (tmp_path / "colour" / name).mkdir(parents=True)
        for index in range(10):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                tmp_path / "colour" / name / f"{index}.png"
            )
    code, out, err = run_cli(capsys, "train", "--data", tmp_path / "colour", "--print-config")
    assert code == 0, err
    printed = yaml.safe_load(out)
    assert printed["loss"] is None and printed["gan"]["diffaug"] is None and printed["gan"]["n_critic"] is None
    (tmp_path / "printed.yaml").write_text(out)
    args = ["train", "--config", tmp_path / "printed.yaml", "--steps", "1", "--batch-size", "4", "--width", "4"]
    code, _, err = run_cli(capsys, *args, "--out", tmp_path / "run", "--no-progress", "--no-tensorboard")
    assert code == 0, err
    trained = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (trained["loss"], trained["gan"]["diffaug"], trained["channels"]) == ("hinge", True, 3)
