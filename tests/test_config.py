import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ganforge.config import (
    DEFAULT_STEPS,
    TASK_DEFAULTS,
    TRANSLATION_FIELDS,
    TrainConfig,
    bound_value,
    flag,
    load_config,
    parse_interval,
    resolve_config,
    save_config,
)
from ganforge.data import resolve_source
from ganforge.errors import GanforgeError, UsageError

configs = st.builds(
    TrainConfig,
    model=st.sampled_from(["mlp", "dcgan"]),
    loss=st.sampled_from(["nonsaturating", "minimax"]),
    z_dim=st.integers(1, 512),
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
)


@settings(max_examples=60, deadline=None)
@given(configs)
def test_config_round_trips_through_yaml(tmp_path_factory, config):
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    save_config(config, path)
    assert load_config(path) == config


def test_default_config_is_valid_and_resolves_the_model_recipe():
    config = TrainConfig()
    config.validate()
    resolved = dataclasses.replace(config, model="mlp").with_model_defaults()
    assert (resolved.lr, resolved.beta1, resolved.width) == (1e-3, 0.9, 128)
    assert TrainConfig(lr=5e-4).with_model_defaults().lr == 5e-4
    # bf16 where the hardware computes in it: measured on GANs (docs/quality.md); no clear gain on pix2pix yet.
    assert TrainConfig().with_model_defaults().precision == "auto"
    assert TrainConfig(task="pix2pix").with_model_defaults().precision == "32"
    assert TrainConfig(task="cyclegan", precision="bf16").with_model_defaults().precision == "bf16"


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(model="stylegan9"), "unknown --model"),
        (dict(data="no-such-dataset"), "neither a known dataset"),
        (dict(batch_size=0), "--batch-size must be at least 1"),
        (dict(lr=-1.0), "--lr must be positive"),
        (dict(beta1=1.5), "--beta1"),
        (dict(channels=2), "--channels must be 1 or 3"),
        (dict(checkpoint_every="often"), "--checkpoint-every"),
        (dict(checkpoint_every="0.5"), "whole number of steps"),
        (dict(sample_every="-3"), "--sample-every"),
        (dict(seed=-1), "--seed"),
    ],
)
def test_validation_names_the_bad_setting(changes, message):
    with pytest.raises(UsageError, match=message):
        dataclasses.replace(TrainConfig(), **changes).validate()


BOUNDED = [setting for setting in dataclasses.fields(TrainConfig) if setting.metadata["bounds"]]


def task_taking(name: str, folder: Path) -> TrainConfig:
    """A config of a task that takes the setting ``name`` (translation settings need a translation task)."""
    if name not in TRANSLATION_FIELDS:
        return TrainConfig()
    task = next((task for task, defaults in TASK_DEFAULTS.items() if name in defaults), "pix2pix")
    return TrainConfig(task=task, data=str(folder))


@pytest.mark.parametrize("setting", BOUNDED, ids=[setting.name for setting in BOUNDED])
def test_each_bound_in_a_fields_metadata_is_enforced_at_both_ends(setting, tmp_path):
    """A field's bounds are one argument of its declaration: validate() accepts each end it includes and
    refuses, naming the flag and the value, the nearest values outside."""
    base = task_taking(setting.name, tmp_path)
    bounds = setting.metadata["bounds"]
    low, high = (bound_value(end) for end in bounds[1:-1].split(","))
    integer = setting.type in (int, int | None)
    step = 1 if integer else 1e-9
    inside = [low if bounds[0] == "[" else low + step, high if bounds[-1] == "]" else high - step]
    outside = [low - step if bounds[0] == "[" else low, high + step if bounds[-1] == "]" else high]
    cast = int if integer else float
    for value in [cast(v) for v in inside if abs(v) != float("inf")]:
        dataclasses.replace(base, **{setting.name: value}).validate()
    for value in [cast(v) for v in outside if abs(v) != float("inf")]:
        with pytest.raises(UsageError, match=rf"^--{flag(setting.name)} must be .*, got {value}$"):
            dataclasses.replace(base, **{setting.name: value}).validate()
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


def test_config_yaml_values_must_have_the_fields_types(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("model: mlp\nlr: 1e-3\n")  # YAML 1.1 reads 1e-3 as a string
    with pytest.raises(GanforgeError, match="config value lr"):
        load_config(path)
    path.write_text("model: mlp\nlr: 1\nsteps: 10\n")  # an int where a float is expected is fine
    assert load_config(path).lr == 1


def test_config_yaml_is_read_with_a_safe_loader(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("!!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(GanforgeError, match="cannot read config"):
        load_config(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "limits, steps, epochs",
    [({}, DEFAULT_STEPS, None), ({"epochs": 3}, None, 3), ({"minutes": 1.0}, None, None), ({"steps": 7}, 7, None)],
)
def test_a_run_given_no_length_trains_the_default_steps(limits, steps, epochs):
    """The first `ganforge train` ends with clean digits in minutes: DEFAULT_STEPS, whatever the dataset's size."""
    config = TrainConfig(data="mnist", **limits)
    resolved = resolve_config(config, (1, 28, 28), labelled=True, source=resolve_source("mnist"))
    assert (resolved.steps, resolved.epochs) == (steps, epochs)


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
    resolved = resolve_config(TrainConfig(**given), shape, labelled=True, source=resolve_source("mnist"))
    assert (resolved.loss, resolved.diffaug) == (loss, diffaug)
