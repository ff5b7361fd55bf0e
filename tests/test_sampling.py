import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.errors import GanforgeError
from ganforge.models import DCGANGenerator
from ganforge.sampling import generate_images, sample_noise, to_uint8, write_images


def test_to_uint8_maps_each_range_onto_0_255():
    assert to_uint8(torch.tensor([-1.0, 0.0, 1.0, 2.0]), (-1.0, 1.0)).tolist() == [0, 128, 255, 255]
    assert to_uint8(torch.tensor([0.0, 0.5, 1.0]), (0.0, 1.0)).tolist() == [0, 128, 255]


def test_the_same_seed_gives_the_same_noise_and_another_seed_does_not():
    assert torch.equal(sample_noise(4, 10, seed=3), sample_noise(4, 10, seed=3))
    assert not torch.equal(sample_noise(4, 10, seed=3), sample_noise(4, 10, seed=4))


def test_generated_images_do_not_depend_on_the_batch_size():
    torch.manual_seed(0)
    generator = DCGANGenerator(width=8)
    noise = sample_noise(10, 100, seed=0)
    whole = generate_images(generator, noise, batch_size=10)
    assert whole.shape == (10, 1, 28, 28) and whole.dtype == torch.uint8
    assert torch.equal(whole, generate_images(generator, noise, batch_size=3))
    assert generator.training  # left as it was found


@pytest.fixture
def images():
    return torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)


def test_write_grid_png(tmp_path, images):
    write_images(images, tmp_path / "grid.png")
    grid = np.array(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (2 + 2 * 10, 2 + 3 * 10, 3)  # 3 per row, 2 rows, 2-pixel padding


def test_write_npz_holds_uint8_nchw_and_labels(tmp_path, images):
    labels = torch.arange(5)
    write_images(images, tmp_path / "s.npz", labels=labels)
    with np.load(tmp_path / "s.npz") as arrays:
        assert arrays["images"].dtype == np.uint8
        assert np.array_equal(arrays["images"], images.numpy())
        assert arrays["labels"].tolist() == [0, 1, 2, 3, 4]


def test_write_folder_of_pngs(tmp_path, images):
    write_images(images, f"{tmp_path}/out/")
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == [f"{i:04d}.png" for i in range(5)]
    assert np.array_equal(np.array(Image.open(files[2])), images[2].permute(1, 2, 0).numpy())


def test_write_grayscale_folder(tmp_path):
    images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    write_images(images, tmp_path)  # an existing folder
    assert np.array_equal(np.array(Image.open(tmp_path / "0001.png")), images[1, 0].numpy())


def test_unknown_output_kind_and_unwritable_paths_are_errors(tmp_path, images):
    with pytest.raises(GanforgeError, match="use a .png"):
        write_images(images, tmp_path / "out.gifv")
    with pytest.raises(GanforgeError, match="cannot write"):
        write_images(images, tmp_path / "missing-dir" / "grid.png")
