"""Inception-v3 plumbing, tested offline with a locally built network (no FID weights download here)."""

import json
import pickle
from urllib.error import URLError

import pytest
import torch

from ganforge.cli import main
from ganforge.errors import GanforgeError
from ganforge.metrics import evaluate_images
from ganforge.metrics.inception import InceptionFeatures
from ganforge.sampling import write_images


@pytest.fixture(scope="module")
def local_weights(tmp_path_factory):
    """Randomly initialised weights in the layout of the FID Inception, saved as a plain state dict.

    The convolutions are drawn as He et al. (2015) do for ReLU networks: with torch's default draws the signal
    fades over the 94 layers, every image gets nearly the same features, and any two sets score FID ~1e-12.
    """
    from torch_fidelity import feature_extractor_inceptionv3 as fidelity

    path = tmp_path_factory.mktemp("inception") / "weights.pt"
    torch.save({}, path)
    original = fidelity.FeatureExtractorInceptionV3.load_state_dict
    fidelity.FeatureExtractorInceptionV3.load_state_dict = lambda self, state, strict=True: None
    try:
        torch.manual_seed(0)
        network = fidelity.FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=path
        )
    finally:
        fidelity.FeatureExtractorInceptionV3.load_state_dict = original
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def rgb_images():
    return torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


@pytest.mark.slow
def test_inception_features_score_a_set_against_itself(tmp_path, local_weights, rgb_images):
    write_images(rgb_images, tmp_path / "reference.npz")
    results = evaluate_images(
        rgb_images,
        str(tmp_path / "reference.npz"),
        features="inception",
        inception_weights=str(local_weights),
        cache=tmp_path,
    )
    assert results["features"] == "inception"
    assert results["fid"] == pytest.approx(0.0, abs=1e-3)
    assert results["feature_spread"] > 0  # the features do vary between images
    assert "class_histogram" not in results  # ImageNet classes say nothing about the dataset's
    # Other images against the same reference: far from zero (a broken extractor scores every set zero).
    options = dict(features="inception", inception_weights=str(local_weights), cache=tmp_path)
    darker = evaluate_images(rgb_images // 4, str(tmp_path / "reference.npz"), **options)
    assert darker["fid"] > 1.0  # measured: 17


@pytest.mark.slow
def test_evaluate_command_with_local_inception_weights(tmp_path, local_weights, rgb_images, capsys, monkeypatch):
    write_images(rgb_images, tmp_path / "samples.npz")
    write_images(rgb_images.flip(0), tmp_path / "reference.npz")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("GANFORGE_INCEPTION_WEIGHTS", str(local_weights))  # the environment variable works too
    reference = ["--reference", str(tmp_path / "reference.npz")]
    code = main(["evaluate", str(tmp_path / "samples.npz"), *reference, "--features", "inception", "--json"])
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    assert results["features"] == "inception" and results["fid"] == pytest.approx(0.0, abs=1e-3)
    write_images(rgb_images // 4, tmp_path / "darker.npz")  # other images, the same reference: not zero
    assert main(["evaluate", str(tmp_path / "darker.npz"), *reference, "--features", "inception", "--json"]) == 0
    darker = json.loads(capsys.readouterr().out)
    assert darker["fid"] > 1.0  # measured: 17


def test_missing_weights_offline_is_one_clear_error(monkeypatch):
    from torch_fidelity import feature_extractor_inceptionv3 as fidelity

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(fidelity, "load_state_dict_from_url", offline)
    with pytest.raises(GanforgeError, match="--inception-weights PATH or \\$GANFORGE_INCEPTION_WEIGHTS"):
        InceptionFeatures(torch.device("cpu"))


def test_a_weights_file_with_a_pickle_payload_is_refused(tmp_path):
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(tmp_path / "evil.pt", "wb") as file:
        pickle.dump({"Conv2d_1a_3x3.conv.weight": Payload()}, file)
    with pytest.raises(GanforgeError, match="is not a plain weights file"):
        InceptionFeatures(torch.device("cpu"), tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(GanforgeError, match="no Inception weights file"):
        InceptionFeatures(torch.device("cpu"), tmp_path / "missing.pt")


@pytest.mark.slow
def test_periodic_evaluation_of_rgb_data_uses_inception(tmp_path, local_weights, monkeypatch):
    from PIL import Image

    from ganforge import TrainConfig, load_checkpoint, train

    folder = tmp_path / "rgb" / "only"
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    for index in range(40):
        array = torch.randint(0, 256, (16, 16, 3), dtype=torch.uint8, generator=generator).numpy()
        Image.fromarray(array).save(folder / f"{index}.png")
    monkeypatch.setenv("GANFORGE_INCEPTION_WEIGHTS", str(local_weights))
    config = TrainConfig(
        model="mlp",
        data=str(folder.parent),
        image_size=16,
        batch_size=8,
        steps=4,
        eval_every="2",
        eval_samples=12,
        out=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
    )
    # metrics.jsonl's eval events do not name their extractor: count what Inception was given instead.
    shapes, inception_call = [], InceptionFeatures.__call__

    def recording_call(self, images, **options):
        shapes.append(images.shape)
        return inception_call(self, images, **options)

    monkeypatch.setattr(InceptionFeatures, "__call__", recording_call)
    train(config)
    # Once the reference images, then the 12 samples of each evaluation, all RGB at 16 px.
    assert len(shapes) == 3 and [shape[1:] for shape in shapes] == [(3, 16, 16)] * 3, shapes
    assert [shape[0] for shape in shapes[1:]] == [12, 12], shapes
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [event for event in events if event.get("event") == "eval"]
    assert [event["step"] for event in evals] == [2, 4]
    assert all("class_histogram" not in event and "classes_covered" not in event for event in evals)
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["eval"]["fid"] == min(event["fid"] for event in evals)
    assert best["step"] == min(evals, key=lambda event: event["fid"])["step"]
