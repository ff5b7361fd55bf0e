import dataclasses

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ganforge.config import (
    SHARED,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)
from ganforge.errors import GanforgeError, UsageError
from ganforge.settings import bound_value, flag, parse_interval
from ganforge.tasks import TASKS, RunData
from ganforge.tasks.gan import GANSettings
from ganforge.tasks.translation import CycleGANSettings, Pix2PixSettings

configs = st.builds(
    TrainConfig,
    model=st.sampled_from(["mlp", "dcgan"]),
    loss=st.sampled_from(["nonsaturating", "minimax"]),
    width=st.none() | st.integers(1, 1024),
    image_size=st.none() | st.integers(8, 256),
    epochs=st.none() | st.integers(1, 1000),
    steps=st.none() | st.integers(1, 10**7),
    minutes=st.none() | st.floats(0.01, 1e4),
    lr=st.none() | st.floats(1e-6, 1.0),
    seed=st.integers(0, 2**31),
    out=st.none() | st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=30),
    checkpoint_every=st.sampled_from(["1m", "30s", "1000", "0.5h"]),
    sample_every=st.sampled_from(["0", "500", "30s"]),
    tensorboard=st.booleans(),
    settings=st.builds(GANSettings, z_dim=st.integers(1, 512), r1=st.floats(0, 10), mirror=st.booleans()),
)
translation_configs = st.builds(
    TrainConfig,
    task=st.just("pix2pix"),
    steps=st.none() | st.integers(1, 10**7),
    settings=st.builds(Pix2PixSettings, direction=st.sampled_from(["AtoB", "BtoA"]), lambda_l1=st.floats(0, 1e3)),
)


@settings(max_examples=60, deadline=None)
@given(configs | translation_configs)
def test_config_round_trips_through_yaml(tmp_path_factory, config):
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    save_config(config, path)
    assert load_config(path) == config


def test_config_yaml_holds_the_shared_fields_then_the_tasks_section_and_nothing_of_another_task(tmp_path):
    """A GAN's config.yaml carries no translation settings (it carried nine nulls), a pix2pix one no z_dim."""
    for config, own, foreign in [
        (TrainConfig(), GANSettings, ("direction", "lambda_l1", "load_size")),
        (TrainConfig(task="pix2pix"), Pix2PixSettings, ("z_dim", "r1_every", "diffaug_policy", "lambda_cycle")),
        (TrainConfig(task="cyclegan"), CycleGANSettings, ("z_dim", "lambda_l1")),
    ]:
        save_config(config, tmp_path / "config.yaml")
        written = yaml.safe_load((tmp_path / "config.yaml").read_text())
        assert list(written) == [*SHARED, config.task]
        assert set(written[config.task]) == {f.name for f in dataclasses.fields(own)}
        flat = set(written) | set(written[config.task])
        assert not flat & set(foreign), flat & set(foreign)


def test_old_flat_config_files_are_upgraded(tmp_path):
    """Runs written before the sections: every field flat, a GAN's with translation nulls, a pix2pix one with
    the GAN's settings it never used. Read as the same runs; the task's fields go into its section."""
    gan = {name: value for name, value in config_to_dict(TrainConfig()).items() if name != "gan"}
    gan |= dataclasses.asdict(GANSettings(z_dim=64)) | {"direction": None, "lambda_l1": None, "pool_size": None}
    (tmp_path / "gan.yaml").write_text(yaml.safe_dump(gan))
    config = load_config(tmp_path / "gan.yaml")
    assert config.task == "gan" and config.settings == GANSettings(z_dim=64)
    pix2pix = {name: value for name, value in config_to_dict(TrainConfig(task="pix2pix")).items() if name != "pix2pix"}
    pix2pix |= dataclasses.asdict(Pix2PixSettings(lambda_l1=50.0)) | {"z_dim": 100, "n_critic": 1, "diffaug": False}
    (tmp_path / "pix2pix.yaml").write_text(yaml.safe_dump(pix2pix))
    config = load_config(tmp_path / "pix2pix.yaml")
    assert config.task == "pix2pix" and config.settings == Pix2PixSettings(lambda_l1=50.0)
    # A run from before conditional models: unconditional, no EMA.
    (tmp_path / "old.yaml").write_text("model: mlp\ndata: mnist\n")
    assert load_config(tmp_path / "old.yaml").settings.conditional is False


def test_a_setting_of_another_task_is_refused_naming_its_owner():
    with pytest.raises(UsageError, match="^--z-dim belongs to --task gan, not --task pix2pix$"):
        TrainConfig.from_dict({"task": "pix2pix", "z_dim": 64})
    with pytest.raises(UsageError, match="^--lambda-l1 belongs to --task pix2pix, not --task gan$"):
        TrainConfig.from_dict({"lambda_l1": 10.0})
    with pytest.raises(UsageError, match="^--direction belongs to --task pix2pix or cyclegan, not --task gan$"):
        TrainConfig.from_dict({"direction": "BtoA"})
    with pytest.raises(UsageError, match="--lambda-cycle belongs to --task cyclegan, not --task pix2pix"):
        TrainConfig.from_dict({"task": "pix2pix", "lambda_cycle": 5.0})
    assert TrainConfig.from_dict({"task": "cyclegan", "pool_size": 3}).settings.pool_size == 3
    # A hand-written file may carry another task's settings at their defaults (or null): they mean nothing.
    assert config_from_dict({"task": "pix2pix", "z_dim": 100, "diffaug": None}).task == "pix2pix"


def test_default_config_is_valid_and_resolves_the_model_recipe():
    config = TrainConfig()
    config.validate()
    resolved = dataclasses.replace(config, model="mlp").resolved()
    assert (resolved.lr, resolved.beta1, resolved.width) == (1e-3, 0.9, 128)
    assert TrainConfig(lr=5e-4).resolved().lr == 5e-4
    # bf16 where the hardware computes in it: measured on GANs (docs/quality.md); no clear gain on pix2pix yet.
    assert TrainConfig().resolved().precision == "auto"
    assert TrainConfig(task="pix2pix").resolved().precision == "32"
    assert TrainConfig(task="cyclegan", precision="bf16").resolved().precision == "bf16"


def test_each_tasks_defaults_are_its_own():
    pix2pix, cyclegan = TrainConfig(task="pix2pix").resolved(), TrainConfig(task="cyclegan").resolved()
    assert (pix2pix.model, pix2pix.loss, pix2pix.ema, pix2pix.image_size) == ("unet", "nonsaturating", True, 256)
    assert pix2pix.settings.load_size == 286 and pix2pix.settings.dropout and pix2pix.settings.lambda_l1 == 100
    assert (cyclegan.model, cyclegan.loss, cyclegan.ema) == ("resnet-blocks", "lsgan", False)
    assert not cyclegan.settings.dropout and cyclegan.settings.pool_size == 50
    assert TrainConfig(task="pix2pix", ema=False).resolved().ema is False


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(model="stylegan9"), "unknown --model"),
        (dict(model="unet"), "--model unet is for --task pix2pix or cyclegan, not --task gan"),
        (dict(data="no-such-dataset"), "neither a known dataset"),
        (dict(batch_size=0), "--batch-size must be at least 1"),
        (dict(lr=-1.0), "--lr must be positive"),
        (dict(beta1=1.5), "--beta1"),
        (dict(channels=2), "--channels must be 1 or 3"),
        (dict(checkpoint_every="often"), "--checkpoint-every"),
        (dict(checkpoint_every="0.5"), "whole number of steps"),
        (dict(sample_every="-3"), "--sample-every"),
        (dict(seed=-1), "--seed"),
        (dict(task="pix2pix"), "needs --data DIR"),
    ],
)
def test_validation_names_the_bad_setting(changes, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig(**changes).validate()


def bounded() -> list[tuple[str, dataclasses.Field]]:
    """(a task that has it, field) of every field with bounds, shared or a task's own."""
    found = {f.name: ("gan", f) for f in dataclasses.fields(TrainConfig) if f.metadata.get("bounds")}
    for name, task in TASKS.items():
        for f in dataclasses.fields(task.settings):
            if f.metadata.get("bounds"):
                found.setdefault(f.name, (name, f))
    return list(found.values())


BOUNDED = bounded()


@pytest.mark.parametrize("task, setting", BOUNDED, ids=[setting.name for _, setting in BOUNDED])
def test_each_bound_in_a_fields_metadata_is_enforced_at_both_ends(task, setting, tmp_path):
    """A field's bounds are one argument of its declaration: validate() accepts each end it includes and
    refuses, naming the flag and the value, the nearest values outside."""
    base = TrainConfig.from_dict({"task": task, "data": str(tmp_path) if task != "gan" else "mnist"})
    bounds = setting.metadata["bounds"]
    low, high = (bound_value(end) for end in bounds[1:-1].split(","))
    integer = setting.type in (int, int | None, "int", "int | None")
    step = 1 if integer else 1e-9
    inside = [low if bounds[0] == "[" else low + step, high if bounds[-1] == "]" else high - step]
    outside = [low - step if bounds[0] == "[" else low, high + step if bounds[-1] == "]" else high]
    cast = int if integer else float
    shared = setting.name in SHARED

    def changed(value):
        if shared:
            return dataclasses.replace(base, **{setting.name: value})
        return dataclasses.replace(base, settings=dataclasses.replace(base.settings, **{setting.name: value}))

    for value in [cast(v) for v in inside if abs(v) != float("inf")]:
        changed(value).validate()
    for value in [cast(v) for v in outside if abs(v) != float("inf")]:
        with pytest.raises(UsageError, match=rf"^--{flag(setting.name)} must be .*, got {value}$"):
            changed(value).validate()
    assert len(BOUNDED) >= 25  # every count, rate and share of the config: a field losing its bounds shows here


@pytest.mark.parametrize(
    "text,expected",
    [("30s", ("seconds", 30)), ("5m", ("seconds", 300)), ("1h", ("seconds", 3600)), ("1000", ("steps", 1000))],
)
def test_parse_interval(text, expected):
    assert parse_interval(text) == expected


def test_unknown_keys_in_config_yaml_are_an_error(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("model: mlp\nlearning_rate: 3\n")
    with pytest.raises(GanforgeError, match="learning_rate"):
        load_config(path)
    path.write_text("model: mlp\ngan:\n  z_dimension: 3\n")
    with pytest.raises(GanforgeError, match="z_dimension"):
        load_config(path)


def test_config_yaml_values_must_have_the_fields_types(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("model: mlp\nlr: 1e-3\n")  # YAML 1.1 reads 1e-3 as a string
    with pytest.raises(GanforgeError, match="config value lr"):
        load_config(path)
    path.write_text("model: mlp\nlr: 1\nsteps: 10\n")  # an int where a float is expected is fine
    assert load_config(path).lr == 1
    path.write_text("model: mlp\ngan:\n  z_dim: many\n")
    with pytest.raises(GanforgeError, match="config value z_dim"):
        load_config(path)


def test_config_yaml_is_read_with_a_safe_loader(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("!!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(GanforgeError, match="cannot read config"):
        load_config(path)
    assert not (tmp_path / "pwned").exists()


def gan_data(shape: tuple[int, int, int], labelled: bool = True) -> RunData:
    """What a GAN's ``load_data`` tells its ``resolve`` about data of ``shape``."""
    return RunData(None, None, "test data", (), 100, facts={"image_shape": shape, "labelled": labelled})


@pytest.mark.parametrize(
    "limits, steps, epochs",
    [({}, 8000, None), ({"epochs": 3}, None, 3), ({"minutes": 1.0}, None, None), ({"steps": 7}, 7, None)],
)
def test_a_run_given_no_length_trains_the_default_steps(limits, steps, epochs):
    """The first `ganforge train` ends with clean digits in minutes: 128,000 digits in steps of the default's 16,
    whatever the dataset's size; a limit given replaces it."""
    resolved = TrainConfig(data="mnist", **limits).resolved(gan_data((1, 28, 28)))
    assert (resolved.steps, resolved.epochs) == (steps, epochs)


@pytest.mark.parametrize(
    ("given", "shape", "steps"),
    [
        ({}, (1, 28, 28), 8000),  # the grayscale default's batch 16
        ({"batch_size": 64}, (1, 28, 28), 2000),  # the length of the default before #29, which had batch 64
        ({}, (3, 32, 32), 2000),  # colour: batch 64
        ({"batch_size": 48}, (3, 32, 32), 2667),  # a batch that does not divide: the images are all trained
    ],
)
def test_the_default_length_is_the_same_images_at_every_batch(given, shape, steps):
    """A recipe's smaller batch does not shorten the run a user gets by default (#29's batch 16 made the
    README's first run a quarter as long, and its grid lacked classes)."""
    resolved = TrainConfig(data="mnist", **given).resolved(gan_data(shape))
    assert resolved.steps == steps
    assert resolved.steps * resolved.batch_size >= TASKS["gan"].default_images > (steps - 1) * resolved.batch_size


def test_a_translators_default_length_follows_its_batch(tmp_path):
    """pix2pix's batch 1 at 256 px trains as many images by default as its 16 at 64 px."""
    data = RunData(None, None, "pairs", (), 100, facts={"split": "train"})
    for size, batch, steps in ((64, 16, 2000), (256, 1, 32000)):
        config = TrainConfig(task="pix2pix", data=str(tmp_path), image_size=size, settings=Pix2PixSettings())
        resolved = config.resolved(data)
        assert (resolved.batch_size, resolved.steps) == (batch, steps)


@pytest.mark.parametrize(
    ("given", "shape", "loss", "diffaug"),
    [
        ({}, (3, 32, 32), "hinge", True),  # colour: the CIFAR-10 benchmark's recipe
        ({}, (3, 64, 64), "hinge", True),
        ({}, (1, 28, 28), "nonsaturating", False),  # grayscale: the MNIST one
        ({"model": "resnet"}, (3, 32, 32), "hinge", True),
        ({"model": "mlp"}, (3, 32, 32), "nonsaturating", False),  # the classic recipe stays classic
        ({"loss": "nonsaturating"}, (3, 32, 32), "nonsaturating", True),  # what the user gives is kept
        ({"diffaug": False}, (3, 32, 32), "hinge", False),
        ({"diffaug": True}, (1, 28, 28), "nonsaturating", True),
    ],
)
def test_colour_images_default_to_the_colour_recipe_and_grayscale_to_the_digits_one(given, shape, loss, diffaug):
    resolved = TrainConfig.from_dict(given).resolved(gan_data(shape))
    assert (resolved.loss, resolved.settings.diffaug) == (loss, diffaug)


@pytest.mark.parametrize(
    ("given", "shape", "batch_size", "class_loss", "lrs"),
    [
        ({}, (1, 28, 28), 16, 0.5, (1.6e-3, 1.6e-3)),  # dcgan on grayscale: quality.md's benchmark chose these
        ({}, (3, 32, 32), 64, 0.5, (8e-4, 8e-4)),  # dcgan on colour: the term, and Adam at 8e-4 at the model's batch
        ({"ema": False}, (3, 32, 32), 64, 0.5, (2e-4, 2e-4)),  # its rate too was measured with the EMA only
        ({"model": "resnet"}, (3, 32, 32), 64, 0.0, (2e-4, 2e-4)),  # resnet keeps its recipe (not measured)
        ({"model": "resnet"}, (1, 28, 28), 64, 0.0, (2e-4, 2e-4)),
        ({"model": "mlp"}, (1, 28, 28), 128, 0.0, (1e-3, 1e-3)),  # the classic recipe stays classic
        ({"batch_size": 64}, (1, 28, 28), 64, 0.5, (1.6e-3, 1.6e-3)),  # what the user gives is kept
        ({"class_loss": 0.0}, (1, 28, 28), 16, 0.0, (1.6e-3, 1.6e-3)),
        ({"class_loss": 0.2}, (1, 28, 28), 16, 0.2, (1.6e-3, 1.6e-3)),
        ({"class_loss": 0.0}, (3, 32, 32), 64, 0.0, (8e-4, 8e-4)),
        ({"lr": 1e-4}, (1, 28, 28), 16, 0.5, (1e-4, 1e-4)),
        ({"d_lr": 8e-4}, (1, 28, 28), 16, 0.5, (1.6e-3, 8e-4)),  # two time-scales: the other rate is the default's
        ({"ema": False}, (1, 28, 28), 16, 0.5, (2e-4, 2e-4)),  # the rate was measured with the EMA only
    ],
)
def test_dcgan_trains_with_the_class_term_at_0_5_and_adam_at_1_6e_3_and_batch_16_on_grayscale_8e_4_on_colour(
    given, shape, batch_size, class_loss, lrs
):
    resolved = TrainConfig.from_dict(given).resolved(gan_data(shape))
    assert (resolved.batch_size, resolved.settings.class_loss) == (batch_size, class_loss)
    assert (resolved.g_lr, resolved.d_lr) == pytest.approx(lrs)


def test_what_depends_on_the_data_stays_unset_until_the_data_are_read():
    """--print-config's config: a GAN's loss, DiffAugment, class term and (dcgan) batch follow the data's colour,
    so they stay None (a printed 'nonsaturating' fed back with --config trained colour data with the grayscale
    recipe)."""
    printed = TrainConfig(data="cifar10").resolved()
    assert printed.loss is None and printed.settings.diffaug is None and printed.settings.n_critic is None
    assert printed.batch_size is None and printed.settings.class_loss is None
    assert (printed.lr, printed.g_lr, printed.d_lr) == (None, None, None)
    again = TrainConfig.from_dict(config_to_dict(printed))
    resolved = again.resolved(gan_data((3, 32, 32)))
    assert (resolved.loss, resolved.settings.diffaug, resolved.settings.n_critic) == ("hinge", True, 1)
    assert (resolved.batch_size, resolved.settings.class_loss) == (64, 0.5)
    grayscale = again.resolved(gan_data((1, 28, 28)))
    assert (grayscale.batch_size, grayscale.settings.class_loss, grayscale.g_lr) == (16, 0.5, 1.6e-3)
    assert again.resolved(gan_data((3, 32, 32))).d_lr == 8e-4
    assert TrainConfig(channels=1).resolved().loss == "nonsaturating"  # the channels given: known at once
