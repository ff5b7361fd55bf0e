import json
import sys
from pathlib import Path

import pytest
import torch

import ganforge.metrics.evaluation as evaluate_module
from ganforge.checkpoint import load_checkpoint, resolve_checkpoint
from ganforge.cli import main
from ganforge.commands import evaluate
from ganforge.data import load_torchvision_dataset
from ganforge.errors import GanforgeError
from ganforge.metrics import MNISTClassifier, MNISTFeatures, evaluate_images, load_mnist_classifier
from ganforge.sampling import write_images
from ganforge.tasks import load


@pytest.fixture(scope="module")
def mnist_test(mnist_root):
    return load_torchvision_dataset("mnist", mnist_root, download="never", train=False)


@pytest.mark.slow
def test_the_shipped_classifier_reaches_its_accuracy(mnist_test):
    model = load_mnist_classifier()
    with torch.no_grad():
        predictions = torch.cat([model(b.float() / 255).argmax(1) for b in mnist_test.images.split(1000)])
    assert (predictions == mnist_test.labels).float().mean() >= 0.993


@pytest.mark.slow
def test_real_images_apart_from_the_reference_score_near_the_real_floor(tmp_path, mnist_root, mnist_test, capsys):
    """2,000 test digits scored against the other 2,000 (evaluate's reference is the test split's first n): two
    independent real sets, so the scores sit at docs/metrics.md's real row, not at a self-comparison's zeros."""
    write_images(mnist_test.images[2000:4000], tmp_path / "real.npz")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        code = main(["evaluate", str(tmp_path / "real.npz"), "--n", "2000", "--json", "--data-root", str(mnist_root)])
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    # docs/metrics.md's real row at 10,000 images: FID 0.19, precision 0.851, recall 0.881; 2,000 add some bias.
    assert 0.05 < results["fid"] < 2.0 and abs(results["kid"]) < 0.05
    assert 0.75 < results["precision"] < 0.97 and 0.75 < results["recall"] < 0.97
    assert results["classes_covered"] == 10 and results["class_kl"] < 0.02
    assert {"kid_std", "classifier_score", "class_histogram"} <= results.keys() and "inception_score" not in results
    assert results["features"] == "mnist" and results["samples"] == 2000
    assert list((tmp_path / "cache" / "ganforge" / "stats").glob("mnist-mnist-*-2000-*.pt"))


@pytest.mark.slow
def test_noise_scores_far_worse_than_digits(tmp_path, mnist_root, mnist_test):
    digits = mnist_test.images[3000:4000]  # the embedded subset's test split holds 4,000
    noise = torch.randint(0, 256, digits.shape, dtype=torch.uint8)
    write_images(digits, tmp_path / "digits.npz")
    write_images(noise, tmp_path / "noise.npz")
    scores = {
        name: evaluate(tmp_path / f"{name}.npz", n=1000, data_root=str(mnist_root), cache=tmp_path)
        for name in ("digits", "noise")
    }
    assert scores["noise"]["fid"] > 10 * scores["digits"]["fid"]
    assert scores["noise"]["precision"] < 0.1 < 0.7 < scores["digits"]["precision"]
    assert scores["digits"]["classifier_score"] > 5 > scores["noise"]["classifier_score"]


def tiny_extractor() -> MNISTFeatures:
    torch.manual_seed(0)
    return MNISTFeatures(torch.device("cpu"), model=MNISTClassifier(width=4, feature_dim=16))


def digit_sets(mnist_test, root: Path) -> dict[str, Path]:
    """Samples and two different references that share one file name, A/refs.npz (noise) and B/refs.npz (digits)."""
    images = mnist_test.images
    write_images(images[:300], root / "s.npz")
    (root / "A").mkdir(), (root / "B").mkdir()
    write_images(torch.randint(0, 256, (300, 1, 28, 28), dtype=torch.uint8), root / "A" / "refs.npz")
    write_images(images[300:600], root / "B" / "refs.npz")
    return {"samples": root / "s.npz", "A": root / "A" / "refs.npz", "B": root / "B" / "refs.npz"}


def test_reference_features_are_cached(tmp_path, mnist_test, monkeypatch):
    sets, extractor, calls = digit_sets(mnist_test, tmp_path), tiny_extractor(), []
    compute = MNISTFeatures.__call__
    monkeypatch.setattr(MNISTFeatures, "__call__", lambda self, images: calls.append(1) or compute(self, images))
    first = evaluate_module.reference_features(extractor, str(sets["B"]), None, 300, tmp_path / "cache")
    again = evaluate_module.reference_features(extractor, str(sets["B"]), None, 300, tmp_path / "cache")
    assert len(calls) == 1  # the second call read the cache
    assert torch.equal(first["features"], again["features"])


def test_two_references_with_one_name_never_share_a_cache_entry(tmp_path, mnist_test):
    """Review bug 1: the cache was keyed by the reference's base name, so B/refs was scored with A/refs' features."""
    sets, extractor = digit_sets(mnist_test, tmp_path), tiny_extractor()
    shared = {
        name: evaluate(sets["samples"], n=300, reference=str(sets[name]), extractor=extractor, cache=tmp_path / "c")
        for name in ("A", "B")
    }
    fresh = evaluate(sets["samples"], n=300, reference=str(sets["B"]), extractor=extractor, cache=tmp_path / "fresh")
    assert shared["B"]["fid"] == fresh["fid"]
    assert shared["A"]["fid"] > 2 * shared["B"]["fid"]  # noise is far from digits
    assert len(list((tmp_path / "c").glob("refs.npz-*.pt"))) == 2


def test_a_cut_short_cache_entry_is_rebuilt_with_a_warning(tmp_path, mnist_test, caplog):
    """Review bug 3: a truncated cache file broke every later evaluate, and was never named."""
    sets, extractor = digit_sets(mnist_test, tmp_path), tiny_extractor()
    good = evaluate(sets["samples"], n=300, reference=str(sets["B"]), extractor=extractor, cache=tmp_path / "c")
    (entry,) = (tmp_path / "c").glob("refs.npz-*.pt")
    entry.write_bytes(entry.read_bytes()[:1000])  # a write cut short by a full disk or a Ctrl-C
    again = evaluate(sets["samples"], n=300, reference=str(sets["B"]), extractor=extractor, cache=tmp_path / "c")
    assert again["fid"] == good["fid"]
    assert f"discarding the unreadable reference-feature cache {entry}" in caplog.text
    assert torch.load(entry, weights_only=True)["features"].shape[0] == 300  # rebuilt whole
    assert not list((tmp_path / "c").glob(".*.tmp"))


def test_any_extractor_can_be_passed_from_python(tmp_path, mnist_root, mnist_test):
    """A small untrained classifier's features give other scores than the shipped one's on the same two sets."""
    torch.manual_seed(0)
    extractor = MNISTFeatures(torch.device("cpu"), model=MNISTClassifier(width=4, feature_dim=16))
    write_images(mnist_test.images[200:400], tmp_path / "s.npz")
    results = evaluate(tmp_path / "s.npz", n=200, data_root=str(mnist_root), extractor=extractor, cache=tmp_path)
    default = evaluate(tmp_path / "s.npz", n=200, data_root=str(mnist_root), cache=tmp_path)
    assert 0 < results["fid"] and 0 < default["fid"] and results["fid"] != pytest.approx(default["fid"], rel=1e-3)
    assert extractor.weights_hash != MNISTFeatures(torch.device("cpu")).weights_hash
    assert len(list(tmp_path.rglob("*.pt"))) == 2  # one cached reference per extractor


def test_a_trained_run_is_scored_against_its_dataset(tmp_path, mnist_root, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--model",
                "mlp",
                "--steps",
                "50",
                "--data-root",
                str(mnist_root),
                "--out",
                str(out),
                "--no-progress",
                "--no-tensorboard",
            ]
        )
        == 0
    )
    results = evaluate(out, n=500, seed=3, data_root=str(mnist_root), cache=tmp_path)
    assert results["reference"].startswith("mnist (test")
    assert results["samples"] == 500 and results["features"] == "mnist"
    # The run's own samples (its EMA-less generator, seed 3), scored directly, score the same.
    samples = load(out).sample(500, seed=3)
    direct = evaluate_images(samples, "mnist", data_root=str(mnist_root), cache=tmp_path)
    assert results["fid"] == pytest.approx(direct["fid"], rel=1e-6)
    # --noise-std: the same noise 1.5x as wide, scored as those samples are.
    wide = evaluate(out, n=500, seed=3, noise_std=1.5, data_root=str(mnist_root), cache=tmp_path)
    samples_wide = load(out).sample(500, seed=3, noise_std=1.5)
    direct_wide = evaluate_images(samples_wide, "mnist", data_root=str(mnist_root), cache=tmp_path)
    assert wide["fid"] == pytest.approx(direct_wide["fid"], rel=1e-6)
    assert wide["fid"] != pytest.approx(results["fid"], rel=1e-3)
    # 50 steps of an MLP GAN lie between real digits (docs/metrics.md: 0.19) and uniform noise.
    noise = torch.randint(0, 256, samples.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    noise_fid = evaluate_images(noise, "mnist", data_root=str(mnist_root), cache=tmp_path)["fid"]
    assert 1.0 < results["fid"] < noise_fid


def test_label_accuracy_reads_the_class_each_sample_was_asked_for(tmp_path, mnist_root, mnist_test):
    """Real test digits "asked for" their own labels obey as often as the classifier is right, asked for the next
    digit almost never; with classes named otherwise, or in another order, there is no label accuracy at all."""
    images, labels = mnist_test.images[:1000], mnist_test.labels[:1000]
    digits = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four"]
    digits += ["5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]  # torchvision's names

    def scores(asked, classes):
        options = dict(data_root=str(mnist_root), cache=tmp_path, labels=asked, classes=classes)
        return evaluate_images(images, "mnist", **options)

    right = scores(labels, digits)
    assert right["label_acc"] > 0.97 and 0.9 < right["label_acc_min"] <= right["label_acc"]
    assert scores((labels + 1) % 10, digits)["label_acc"] < 0.05
    assert scores(labels, [str(digit) for digit in range(10)])["label_acc"] == right["label_acc"]  # class folders
    for classes in (digits[::-1], list("ABCDEFGHIJ"), None):
        assert "label_acc" not in scores(labels, classes)


def test_a_conditional_run_reports_its_label_accuracy_while_training_and_when_evaluated(tiny_run, tmp_path, mnist_root):
    run = tiny_run("dcgan", "--conditional", "--eval-every", "3", "--eval-samples", "32")
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [event for event in events if event.get("event") == "eval"]
    assert [e["step"] for e in evals] == [3, 6]
    assert all(0.0 <= e["label_acc_min"] <= e["label_acc"] <= 1.0 for e in evals)
    scores = evaluate(run, n=100, data_root=str(mnist_root), cache=tmp_path)
    assert 0.0 <= scores["label_acc_min"] <= scores["label_acc"] <= 1.0
    unconditional = tiny_run("dcgan", "--eval-every", "3", "--eval-samples", "32")
    events = [json.loads(line) for line in (unconditional / "metrics.jsonl").read_text().splitlines()]
    assert not any("label_acc" in event for event in events)


@pytest.mark.slow
def test_metrics_rank_real_blurred_and_noise_and_catch_lost_classes(tmp_path, mnist_root):
    """The ranking sanity of docs/metrics.md, on 1,000 images per set."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from metrics_reference import degraded_sets

    sets = degraded_sets(mnist_root, 1000, seed=0)
    scores = {
        name.split(" ")[0]: evaluate_images(images, "mnist", data_root=str(mnist_root), cache=tmp_path)
        for name, images in sets.items()
    }
    assert scores["real:"]["fid"] * 10 < scores["blurred"]["fid"] < scores["uniform"]["fid"]
    assert scores["half"]["classes_covered"] == 5
    assert scores["half"]["recall"] < 0.7 * scores["real:"]["recall"]
    assert scores["one"]["classes_covered"] == 1 and scores["one"]["recall"] < 0.01  # mode collapse
    # deterministic: the same samples give the same numbers
    again = evaluate_images(sets["real: MNIST training images"], "mnist", data_root=str(mnist_root), cache=tmp_path)
    assert again == scores["real:"]


def test_too_few_samples_and_foreign_shapes(tmp_path, mnist_root, caplog):
    with pytest.raises(GanforgeError, match="at least 10 samples"):
        evaluate_images(torch.zeros(5, 1, 28, 28, dtype=torch.uint8), data_root=str(mnist_root), cache=tmp_path)
    rgb = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    results = evaluate_images(rgb, features="mnist", data_root=str(mnist_root), cache=tmp_path)
    assert "converting (3, 32, 32) samples" in caplog.text and results["samples"] == 20


def test_a_folder_of_samples_keeps_its_size(tmp_path, mnist_test):
    """PNGs written by ganforge generate score like the array they came from."""
    digits = mnist_test.images[:40]
    write_images(digits, f"{tmp_path}/pngs/")
    write_images(digits, tmp_path / "reference.npz")
    results = evaluate(tmp_path / "pngs", n=40, reference=str(tmp_path / "reference.npz"), cache=tmp_path)
    assert results["features"] == "mnist" and results["fid"] < 1e-6


def test_one_big_image_first_in_a_folder_does_not_size_the_others(tmp_path, mnist_test):
    """Review bug 9: a 6000-pixel first file upscaled 100 digits to 6000x6000 (4.3 GB) and switched to Inception."""
    from PIL import Image

    digits = mnist_test.images[:40]
    write_images(digits, f"{tmp_path}/pngs/")
    Image.new("RGB", (1500, 1000), "white").save(tmp_path / "pngs" / "0000-big.png")  # sorts first
    write_images(digits, tmp_path / "reference.npz")
    results = evaluate(tmp_path / "pngs", n=40, reference=str(tmp_path / "reference.npz"), cache=tmp_path)
    assert results["features"] == "mnist"  # the folder's typical 1x28x28, not the first file's 3x1000x1000


def test_any_nn_module_can_be_the_feature_extractor(tmp_path, mnist_root, mnist_test):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 16))
    from ganforge.metrics.evaluation import reference_subset

    digits = mnist_test.images[reference_subset(len(mnist_test), 300)]  # the very images 300 samples are scored against
    noise = torch.randint(0, 256, (300, 1, 28, 28), dtype=torch.uint8)
    real = evaluate_images(digits, data_root=str(mnist_root), extractor=module, cache=tmp_path)
    fake = evaluate_images(noise, data_root=str(mnist_root), extractor=module, cache=tmp_path)
    assert real["features"] == "module" and real["fid"] < 1e-6 < fake["fid"]
    assert "classifier_score" not in real and "class_histogram" not in real  # a plain module gives no classes


def test_a_run_trained_on_a_folder_is_scored_against_the_part_it_held_out(tmp_path, mnist_test):
    write_images(mnist_test.images[:200], f"{tmp_path}/digits/all/")
    out = tmp_path / "run"
    tiny = ["--model", "mlp", "--steps", "5", "--image-size", "28", "--batch-size", "16", "--no-progress"]
    assert main(["train", "--data", str(tmp_path / "digits"), "--out", str(out), *tiny]) == 0
    assert load_checkpoint(resolve_checkpoint(out))["num_images"] == 180  # 10% held out of training
    results = evaluate(out, n=64, cache=tmp_path)
    assert results["reference"] == f"{tmp_path / 'digits'} (held-out, 20 images)"
    explicit = evaluate(out, n=64, reference=str(tmp_path / "digits"), cache=tmp_path)
    assert explicit["reference"] == f"{tmp_path / 'digits'} (all, 64 images)"  # a named reference is used whole


def test_the_features_flag_offers_every_registered_extractor():
    """The CLI's --features choices are written torch-free in config.py; they must name metrics.EXTRACTORS (and
    swd, which scores image patches with no extractor: metrics.swd)."""
    from ganforge.config import FEATURE_EXTRACTORS
    from ganforge.metrics import EXTRACTORS

    assert FEATURE_EXTRACTORS == ("auto", *EXTRACTORS, "swd")
