import gc
import logging
import os
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ganforge.data import (
    EpochSampler,
    ImageDataset,
    conform_images,
    load_dataset,
    load_torchvision_dataset,
    scale_images,
    split_holdout,
)
from ganforge.data.sources import load_embedded_mnist
from ganforge.errors import GanforgeError


def make_folder(root, classes=("cats", "dogs"), per_class=3, size=(40, 30), mode="RGB"):
    """Write small random images under root/CLASS/ (one level deeper for the second image)."""
    rng = np.random.default_rng(0)
    for name in classes:
        for index in range(per_class):
            folder = root / name / ("nested" if index == 1 else "")
            folder.mkdir(parents=True, exist_ok=True)
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{index}.png")
    return root


def test_mnist_loads_from_the_data_root_into_one_uint8_tensor(real_mnist_root):
    data = load_dataset("mnist", real_mnist_root, download=False)
    assert data.images.shape == (60000, 1, 28, 28) and data.images.dtype == torch.uint8
    assert data.labels.shape == (60000,) and set(data.labels.unique().tolist()) == set(range(10))
    assert 30 < data.images.float().mean() < 40  # MNIST's mean intensity is about 33


@pytest.mark.slow
def test_mnist_can_be_resized_and_made_rgb(real_mnist_root):
    data = load_dataset("mnist", real_mnist_root, image_size=32, channels=3, download=False)
    assert data.images.shape == (60000, 3, 32, 32)
    assert torch.equal(data.images[:, 0], data.images[:, 2])


def test_embedded_subset_is_balanced_mnist():
    data = load_embedded_mnist()
    assert data.images.shape == (10000, 1, 28, 28) and data.images.dtype == torch.uint8
    assert torch.bincount(data.labels).tolist() == [1000] * 10


def test_mnist_missing_from_the_root_falls_back_to_the_embedded_subset(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        data = load_dataset("mnist", tmp_path, download=False)
    assert len(data) == 10000
    assert "embedded 10,000-image subset" in caplog.text


def test_other_datasets_missing_from_the_root_are_an_error(tmp_path):
    with pytest.raises(GanforgeError, match="cifar10 is not in data root"):
        load_dataset("cifar10", tmp_path, download=False)


def test_a_data_root_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(GanforgeError, match="does not exist"):
        load_dataset("mnist", tmp_path / "nope", download=False)


def test_image_folder_subfolders_become_labels(tmp_path):
    data = load_dataset(str(make_folder(tmp_path)), image_size=16)
    assert data.images.shape == (6, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.classes == ["cats", "dogs"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_grayscale_folder_without_classes_is_unlabelled(tmp_path):
    for index in range(4):
        Image.fromarray(np.full((20, 20), index * 60, dtype=np.uint8), "L").save(tmp_path / f"{index}.png")
    data = load_dataset(str(tmp_path), image_size=8)
    assert data.images.shape == (4, 1, 8, 8) and data.labels is None
    assert sorted(data.images[:, 0, 4, 4].tolist()) == [0, 60, 120, 180]


def test_folder_images_are_resized_then_center_cropped(tmp_path):
    # 40x20: left half black, right half white; the center crop of the 2:1 image keeps both halves
    array = np.zeros((20, 40, 3), dtype=np.uint8)
    array[:, 20:] = 255
    (tmp_path / "a").mkdir()
    Image.fromarray(array).save(tmp_path / "a" / "img.png")
    data = load_dataset(str(tmp_path), image_size=10, channels=3)
    assert data.images.shape == (1, 3, 10, 10)
    row = data.images[0, 0, 5]
    assert row[0] == 0 and row[-1] == 255


def test_corrupt_images_are_skipped_with_a_warning_naming_them(tmp_path, caplog):
    make_folder(tmp_path)
    (tmp_path / "cats" / "broken.png").write_bytes(b"\x89PNG this is not really a png")
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        data = load_dataset(str(tmp_path), image_size=16)
    assert len(data) == 6
    assert "broken.png" in caplog.text


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 256 * 64, 256 * 128, 65535]], dtype=np.uint16).repeat(4, axis=0)  # (4, 4)
    Image.fromarray(values).save(tmp_path / "wide.png")
    data = load_dataset(str(tmp_path), image_size=4)
    assert data.images.shape == (1, 1, 4, 4)
    assert data.images[0, 0, 0].tolist() == [0, 64, 128, 255]


def test_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(GanforgeError, match="no images"):
        load_dataset(str(tmp_path))


def test_an_npz_too_big_for_memory_is_refused_before_loading(tmp_path, monkeypatch):
    """Folders stream when they do not fit (below); an .npz, read whole, is refused from its header."""
    import ganforge.data

    np.savez(tmp_path / "data.npz", images=np.zeros((4, 1, 8, 8), np.uint8))
    assert len(load_dataset(str(tmp_path / "data.npz"))) == 4
    monkeypatch.setattr(ganforge.data.memory, "MEMORY_FRACTION", 1e-12)
    with pytest.raises(GanforgeError, match="data.npz: 4 images at 1x8x8 need 256 bytes in memory, more than half"):
        load_dataset(str(tmp_path / "data.npz"))


@pytest.fixture
def decode_cache(tmp_path, monkeypatch):
    """Folders of 4 images or more go through the decode cache, kept under tmp_path/cache; returns a counter
    of the decodes done."""
    import ganforge.data

    monkeypatch.setattr(ganforge.data.folders, "FOLDER_CACHE_MIN", 4)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    decodes, decode = [], ganforge.data.folders.decode_images

    def counted(files, *args, **kwargs):
        decodes.append(len(files))
        return decode(files, *args, **kwargs)

    monkeypatch.setattr(ganforge.data.folders, "decode_images", counted)
    return decodes


def test_a_folder_is_decoded_once_and_then_read_from_the_cache(tmp_path, decode_cache, caplog):
    data = make_folder(tmp_path / "data")
    (data / "cats" / "broken.png").write_bytes(b"\x89PNG this is not really a png")
    first = load_dataset(str(data), image_size=16)
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        second = load_dataset(str(data), image_size=16)
    assert decode_cache == [7]  # decoded once, broken file included (and skipped)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert len(second) == 6 and "1 unreadable images" in caplog.text
    entries = list((tmp_path / "cache" / "ganforge" / "folders").iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("data-")
    # Another size is another entry; the first stays.
    load_dataset(str(data), image_size=8)
    assert decode_cache == [7, 7] and len(list(entries[0].parent.iterdir())) == 2


@pytest.mark.parametrize("change", ["edit", "add", "remove"])
def test_a_changed_folder_is_decoded_again_and_its_stale_entry_removed(tmp_path, decode_cache, change):
    data = make_folder(tmp_path / "data")
    before = load_dataset(str(data), image_size=16)
    target = data / "dogs" / "0.png"
    if change == "edit":  # other pixels, same size on disk and the same name: the modification time tells
        pixels, size = np.asarray(Image.open(target)), target.stat().st_size
        Image.fromarray(255 - pixels).save(target)
        assert target.stat().st_size == size  # else the size, not the modification time, would tell
        os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    elif change == "add":
        Image.new("RGB", (40, 30), "red").save(data / "dogs" / "new.png")
    else:
        target.unlink()
    after = load_dataset(str(data), image_size=16)
    assert decode_cache == [6, 6 + {"edit": 0, "add": 1, "remove": -1}[change]]
    if change == "edit":
        assert not torch.equal(before.images, after.images)
    assert len(list((tmp_path / "cache" / "ganforge" / "folders").iterdir())) == 1


def test_a_damaged_cache_entry_is_discarded_with_a_warning_and_rebuilt(tmp_path, decode_cache, caplog):
    data = make_folder(tmp_path / "data")
    first = load_dataset(str(data), image_size=16)
    (entry,) = (tmp_path / "cache" / "ganforge" / "folders").iterdir()
    entry.write_bytes(entry.read_bytes()[:100])  # a write cut short
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        again = load_dataset(str(data), image_size=16)
    assert "discarding the unreadable decode cache" in caplog.text and decode_cache == [6, 6]
    assert torch.equal(first.images, again.images)
    assert torch.equal(load_dataset(str(data), image_size=16).images, first.images) and decode_cache == [6, 6]


def test_a_cache_that_cannot_be_written_costs_time_not_the_data(tmp_path, decode_cache, caplog):
    data = make_folder(tmp_path / "data")
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        loaded = load_dataset(str(data), image_size=16)
    assert len(loaded) == 6 and "could not cache the decoded images" in caplog.text


def mapped_files() -> str:
    """The files this process has memory-mapped (Linux)."""
    return Path("/proc/self/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")
def test_a_folder_too_big_for_memory_streams_from_the_cache_and_so_does_its_training_part(
    tmp_path, decode_cache, monkeypatch, caplog
):
    """Over the memory budget a folder is decoded once into its cache entry and read from it memory-mapped,
    as is a held-out split's part that does not fit either; the images and labels are an in-memory load's."""
    import ganforge.data

    data = make_folder(tmp_path / "data")  # 6 images, 2 classes
    monkeypatch.setattr(ganforge.data.memory, "memory_budget", lambda: 2 * 3 * 16 * 16)  # room for 2 images at 16 px
    with caplog.at_level(logging.INFO, logger="ganforge"):
        streamed = load_dataset(str(data), image_size=16)
    assert "streaming them from a memory-mapped decode cache" in caplog.text and decode_cache == [6]
    entry = streamed.streamed_from
    assert entry.parent == tmp_path / "cache" / "ganforge" / "folders" and str(entry) in mapped_files()
    del streamed
    gc.collect()
    assert str(entry) not in mapped_files(), "the first load's mapping outlived its dataset"
    # Every later run reads the entry, memory-mapped again, nothing decoded (review turn 3, row 18: this second
    # load read the whole entry into memory unseen).
    streamed = load_dataset(str(data), image_size=16)
    assert decode_cache == [6] and streamed.streamed_from == entry
    assert str(entry) in mapped_files(), "the reload from the cache is not memory-mapped"
    monkeypatch.setattr(ganforge.data.folders, "FOLDER_CACHE_MIN", 100)  # a fresh decode, into memory, to compare
    monkeypatch.setattr(ganforge.data.memory, "memory_budget", lambda: None)
    in_memory = load_dataset(str(data), image_size=16)
    assert in_memory.streamed_from is None and decode_cache == [6, 6]
    assert torch.equal(streamed.images, in_memory.images) and torch.equal(streamed.labels, in_memory.labels)
    # A third held out: its 2 images fit in memory, the 4 for training stream from a file of their own.
    monkeypatch.setattr(ganforge.data.memory, "memory_budget", lambda: 2 * 3 * 16 * 16)
    (train, held), (expected_train, expected_held) = split_holdout(streamed, 1 / 3), split_holdout(in_memory, 1 / 3)
    assert held.streamed_from is None and torch.equal(held.images, expected_held.images)
    assert train.streamed_from.name == f"{entry.stem}-holdout0.333333-train.npy"
    assert str(train.streamed_from) in mapped_files()
    assert torch.equal(train.images, expected_train.images) and torch.equal(train.labels, expected_train.labels)
    written = train.streamed_from.stat().st_mtime_ns
    assert torch.equal(split_holdout(streamed, 1 / 3)[0].images, train.images)  # read again, not rewritten
    assert train.streamed_from.stat().st_mtime_ns == written


def test_a_streamed_folder_trains_end_to_end(tmp_path, decode_cache, monkeypatch):
    import ganforge.data
    from ganforge import TrainConfig, train
    from ganforge.checkpoint import load_checkpoint
    from test_training import QUIET

    data = make_folder(tmp_path / "data", per_class=4)
    monkeypatch.setattr(ganforge.data.memory, "memory_budget", lambda: 3 * 3 * 16 * 16)
    config = TrainConfig(
        data=str(data),
        model="dcgan",
        image_size=16,
        batch_size=2,
        steps=3,
        holdout=0.25,
        out=str(tmp_path / "run"),
        **QUIET,
    )
    result = train(config)
    assert result.step == 3 and load_checkpoint(tmp_path / "run")["num_images"] == 6
    assert len(list((tmp_path / "cache" / "ganforge" / "folders").glob("*-holdout0.25-train.npy"))) == 1


def test_a_streamed_folder_without_room_in_the_cache_is_one_line(tmp_path, decode_cache, monkeypatch):
    import shutil

    import ganforge.data

    data = make_folder(tmp_path / "data")
    monkeypatch.setattr(ganforge.data.memory, "memory_budget", lambda: 3 * 16 * 16)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: types.SimpleNamespace(total=2**30, used=2**30, free=1000))
    with pytest.raises(
        GanforgeError, match=r"decoding them needs 9\.0 KiB free in .*folders, which has 1000 bytes"
    ) as error:
        load_dataset(str(data), image_size=16)
    assert "\n" not in str(error.value) and decode_cache == []
    assert not list((tmp_path / "cache" / "ganforge" / "folders").glob("*.npy"))


def test_conform_converts_rgb_to_luma():
    rgb = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    gray = conform_images(rgb, None, 1)
    assert gray.shape == (1, 1, 4, 4) and gray.unique().tolist() == [76]  # 0.299 * 255


@pytest.mark.parametrize("output_range", [(0.0, 1.0), (-1.0, 1.0)])
def test_scale_images_maps_uint8_onto_the_generator_range(output_range):
    scaled = scale_images(torch.tensor([0, 255], dtype=torch.uint8), output_range)
    assert scaled.tolist() == list(output_range)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 64), st.integers(0, 5))
def test_each_epoch_visits_every_full_batch_once(num_images, batch_size, seed):
    if num_images < batch_size:
        with pytest.raises(GanforgeError):
            EpochSampler(num_images, batch_size, seed)
        return
    sampler = EpochSampler(num_images, batch_size, seed)
    for epoch in range(2):
        steps = range(epoch * sampler.steps_per_epoch, (epoch + 1) * sampler.steps_per_epoch)
        seen = torch.cat([sampler.indices(step) for step in steps])
        assert len(seen) == sampler.steps_per_epoch * batch_size
        assert len(seen.unique()) == len(seen)  # no image twice in an epoch
    # a fresh sampler (a resumed run) gives the same batch for the same step
    step = sampler.steps_per_epoch + 1
    assert torch.equal(EpochSampler(num_images, batch_size, seed).indices(step), sampler.indices(step))


def test_the_held_out_part_is_fixed_disjoint_and_sized():
    images = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1).expand(50, 1, 2, 2).contiguous()
    dataset = ImageDataset(images, torch.arange(50) % 5, [str(c) for c in range(5)], "fifty")
    kept, held = split_holdout(dataset, 0.1)
    assert (len(kept), len(held)) == (45, 5)
    ids = lambda part: set(part.images[:, 0, 0, 0].tolist())  # noqa: E731
    assert ids(kept).isdisjoint(ids(held)) and ids(kept) | ids(held) == set(range(50))
    assert torch.equal(held.labels, held.images[:, 0, 0, 0].long() % 5)  # labels follow their images
    assert ids(split_holdout(dataset, 0.1)[1]) == ids(held)  # the same images every time
    assert len(split_holdout(dataset, 0.0)[1]) == 0


def squares_dataset(count: int, seed: int) -> ImageDataset:
    """Bright squares of two sizes on black, labelled by size: a stand-in for a new kind of source."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(2, (count,), generator=generator)
    images = torch.zeros(count, 1, 28, 28, dtype=torch.uint8)
    for index, label in enumerate(labels.tolist()):
        top, left = torch.randint(4, 12, (2,), generator=generator).tolist()
        side = 6 if label == 0 else 12
        images[index, 0, top : top + side, left : left + side] = 255
    return ImageDataset(images, labels, ["small", "large"], f"{count} squares")


@pytest.mark.slow
def test_a_new_kind_of_source_is_one_registry_entry(tmp_path, monkeypatch):
    """Registered from this file alone, a source trains, evaluates against its own test split, and scores CAS."""
    from ganforge import evaluate, train
    from ganforge.config import TrainConfig
    from ganforge.data import SOURCES, DataSource

    loaded = []

    def load(data, root, image_size, channels, download):
        loaded.append(data)
        return squares_dataset(int(data.split("-")[1]), seed=0)

    squares = DataSource(
        matches=lambda data: data.startswith("squares-"),
        load=load,
        load_test=lambda data, root: squares_dataset(200, seed=1),
        is_path=False,
    )
    monkeypatch.setitem(SOURCES, "squares", squares)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(model="mlp", data="squares-256", steps=4, batch_size=32, progress=False, tensorboard=False)
    result = train(config)
    assert loaded == ["squares-256"]
    assert result.run_dir.name.startswith("mlp-squares-256-")  # the run is named after the source's short name
    saved = (result.run_dir / "config.yaml").read_text()
    assert "data: squares-256" in saved and "holdout: 0.0" in saved  # a source with a test split holds nothing out
    scores = evaluate(result.run_dir, n=200, device="cpu")
    assert scores["reference"] == "squares-256 (test, 200 images)"
    assert scores["fid"] > 0


class FakeTorchvision:
    """Stand-ins for torchvision's dataset classes, as they hold their data once their files are read."""

    @staticmethod
    def make(layout: str, labels_attribute: str, classes: list[str] | None, split_kwarg: bool):
        def build(root, download=False, train=None, split=None):
            assert (split is not None) == split_kwarg and (train is not None) == (not split_kwarg)
            count = 6 if split in ("train", None) and train in (True, None) else 4
            dataset = types.SimpleNamespace()
            shape = {"NHWC": (count, 5, 7, 3), "NCHW": (count, 3, 5, 7), "NHW": (count, 5, 7)}[layout]
            dataset.data = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
            setattr(dataset, labels_attribute, np.arange(count) % 3)
            if classes is not None:
                dataset.classes = classes
            return dataset

        return build


@pytest.mark.parametrize(
    "name,cls,layout,labels_attribute,classes,split_kwarg",
    [
        ("cifar100", "CIFAR100", "NHWC", "targets", ["apple", "bee", "cup"], False),
        ("svhn", "SVHN", "NCHW", "labels", None, True),
        ("stl10", "STL10", "NCHW", "labels", ["airplane", "bird", "car"], True),
    ],
)
def test_builtin_colour_datasets_become_uint8_nchw_with_their_labels(
    monkeypatch, tmp_path, name, cls, layout, labels_attribute, classes, split_kwarg
):
    import torchvision

    monkeypatch.setattr(torchvision.datasets, cls, FakeTorchvision.make(layout, labels_attribute, classes, split_kwarg))
    train = load_torchvision_dataset(name, tmp_path, download="never")
    test = load_torchvision_dataset(name, tmp_path, download="never", train=False)
    assert (
        train.images.shape == (6, 3, 5, 7) and test.images.shape == (4, 3, 5, 7) and train.images.dtype == torch.uint8
    )
    if layout == "NHWC":  # pixel (0, 0) of image 0: channels 0, 1, 2 are the first three bytes
        assert train.images[0, :, 0, 0].tolist() == [0, 1, 2]
    else:
        assert train.images[0, 0, 0, :3].tolist() == [0, 1, 2]
    assert train.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert train.classes == (classes or ["0", "1", "2"])  # SVHN names none: its digits' numbers


def test_a_builtin_dataset_missing_offline_says_where_to_put_its_files(tmp_path):
    with pytest.raises(
        GanforgeError, match=r"^cifar100 is not in data root .*put torchvision's cifar-100-python/ there"
    ):
        load_dataset("cifar100", tmp_path, download=False)


@pytest.mark.parametrize(("own", "trained"), [(32, 32), (28, 28), (48, 48), (30, 64), (96, 64), (6, 64)])
def test_a_folder_trains_at_its_images_own_size_up_to_64_px(tmp_path, own, trained):
    """CIFAR-10's 32 px images train at 32, not upscaled; a size the models cannot be built for (30: a 15 px
    base) or a larger one trains at 64."""
    make_folder(tmp_path, size=(own + 8, own))  # the shorter side decides
    assert load_dataset(str(tmp_path)).images.shape[-2:] == (trained, trained)
    assert load_dataset(str(tmp_path), image_size=16).images.shape[-2:] == (16, 16)  # asked for: as asked


def make_celeba(root, train=4, valid=1, test=2):
    """A CelebA root in torchvision's layout: celeba/img_align_celeba/*.jpg (178x218 faces, scaled down here) and
    celeba/list_eval_partition.txt."""
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for index, split in enumerate([0] * train + [1] * valid + [2] * test):
        name = f"{index + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (44, 36, 3), dtype=np.uint8)).save(folder / name)
        lines.append(f"{name} {split}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def test_celeba_reads_its_aligned_faces_by_split_as_a_folder(tmp_path):
    from ganforge.data import load_reference

    root = make_celeba(tmp_path)
    train = load_dataset("celeba", root, download=False)
    assert train.images.shape == (4, 3, 64, 64) and train.labels is None  # the default 64 px, unlabelled
    assert load_dataset("celeba", root, image_size=32, download=False).images.shape == (4, 3, 32, 32)
    test, split = load_reference("celeba", root)
    assert split == "test" and test.images.shape == (2, 3, 64, 64)


def test_celeba_missing_offline_says_which_files_to_put_where(tmp_path):
    with pytest.raises(GanforgeError, match=r"^celeba is not in data root .*put CelebA's img_align_celeba/ and "):
        load_dataset("celeba", tmp_path, download=False)
    make_celeba(tmp_path)
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("000001.jpg 1\n")  # no training image listed
    with pytest.raises(GanforgeError, match="lists no training images"):
        load_dataset("celeba", tmp_path, download=False)


def test_a_killed_streamed_decode_leaves_nothing_for_good(tmp_path, decode_cache, monkeypatch):
    """Review turn 3, B6: SIGKILL (or running out of memory) during a streamed decode left a dataset-sized
    NAME.decoding-PID.npy that no run removed, each one eating into the room the next decode needs. The next
    streamed decode removes those whose process is gone, before it counts the room; a live one's is kept."""
    import os

    import ganforge.data

    data = make_folder(tmp_path / "data")
    folder = tmp_path / "cache" / "ganforge" / "folders"
    folder.mkdir(parents=True)
    gone = folder / f"data-00000000-3x16-0123456789abcdef.decoding-{2**22 + 12345}.npy"
    gone.write_bytes(b"\0" * 4096)  # PIDs stop at 2**22 on Linux: that one is no process
    live = folder / f"data-00000000-3x16-fedcba9876543210.decoding-{os.getpid()}.npy"
    live.write_bytes(b"\0" * 10)
    room = []
    monkeypatch.setattr(ganforge.data.memory, "memory_budget", lambda: 2 * 3 * 16 * 16)  # streamed
    monkeypatch.setattr(
        ganforge.data.folders, "check_disk_room", lambda place, needed, what: room.append(gone.exists())
    )
    streamed = load_dataset(str(data), image_size=16)
    assert streamed.streamed_from is not None and room == [False]  # removed before the room was counted
    assert not gone.exists() and live.exists()


def test_a_cache_entry_killed_while_saved_leaves_nothing_for_good(tmp_path, decode_cache):
    """Review turn 3 rerun: SIGKILL while a decoded folder was being saved to the cache left the half-written
    .NAME.pt.PID.tmp for ever (27 MB of them in a user's cache after a few kills), also once the entry was
    cached by a later run. Every load of a cached folder removes those whose process is gone; a live one stays."""
    import os

    data = make_folder(tmp_path / "data")
    load_dataset(str(data), image_size=16)  # cached now: the next load reads the entry
    folder = tmp_path / "cache" / "ganforge" / "folders"
    (entry,) = folder.glob("*.pt")
    gone = folder / f".{entry.name}.{2**22 + 12345}.tmp"  # PIDs stop at 2**22 on Linux: that one is no process
    gone.write_bytes(b"\0" * 4096)
    live = folder / f".{entry.name}.{os.getpid()}.tmp"
    live.write_bytes(b"\0" * 10)
    mine = folder / "notes.1.tmp"  # not a ganforge temporary (no leading dot): never touched
    mine.write_bytes(b"mine")
    assert len(load_dataset(str(data), image_size=16)) > 0
    assert not gone.exists() and live.exists() and mine.read_bytes() == b"mine"


def test_a_folder_is_scanned_as_torchvisions_image_folder_reads_it(tmp_path):
    from torchvision.datasets import ImageFolder
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from ganforge.data.folders import scan_image_folder
    from ganforge.data.images import IMAGE_EXTENSIONS

    assert IMAGE_EXTENSIONS == IMG_EXTENSIONS  # .tif, .ppm and .pgm as torchvision reads them
    rng = np.random.default_rng(0)
    files = ["cat/a.png", "cat/b.tif", "cat/deep/c.ppm", "cat/deep.jpg", "dog/x.pgm", "dog/y.webp", "dog/z.BMP"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(
            tmp_path / name, format=None if not name.endswith(".ppm") else "PPM"
        )
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    found, labels, classes = scan_image_folder(tmp_path)
    reference = ImageFolder(str(tmp_path))
    assert [str(path) for path in found] == [path for path, _ in reference.samples]  # the same files, in order
    assert labels == reference.targets and classes == reference.classes
    assert len(found) == 7
