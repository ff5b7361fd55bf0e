import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.errors import GanforgeError
from ganforge.models import DCGANGenerator
from ganforge.sampling import (
    generate_images,
    interpolation_frames,
    latent_loop,
    sample_noise,
    save_gif,
    slerp,
    to_uint8,
    write_images,
)


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
    assert np.array_equal(grid[12:20, 2:10], images[3].permute(1, 2, 0).numpy())


def test_a_grayscale_grid_is_a_grayscale_png_with_the_same_pixels(tmp_path):
    gray = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    write_images(gray, tmp_path / "grid.png")
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.mode == "L" and grid.size == (22, 22)
        assert np.array_equal(np.array(grid)[12:20, 12:20], gray[3, 0].numpy())


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


def test_slerp_ends_are_exact_and_the_midpoint_of_orthogonal_unit_vectors_is_hand_computed():
    a, b = sample_noise(5, 100, seed=1), sample_noise(5, 100, seed=2)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    # Angle pi/2: each coefficient is sin(pi/4) / sin(pi/2) = 1/sqrt(2).
    x, y = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert torch.allclose(slerp(x, y, 0.5), torch.tensor([0.5**0.5, 0.5**0.5]))
    # A third of the way along the quarter circle is at 30 degrees.
    assert torch.allclose(slerp(x, y, 1 / 3), torch.tensor([3**0.5 / 2, 0.5]))


def test_slerp_keeps_the_norm_of_equal_norm_rows_where_a_straight_line_shrinks_it():
    a = sample_noise(8, 100, seed=3)
    b = sample_noise(8, 100, seed=4)
    b = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)
    for t in (0.1, 0.25, 0.5, 0.9):
        assert torch.allclose(slerp(a, b, t).norm(dim=1), a.norm(dim=1), rtol=1e-5)
    assert ((0.5 * a + 0.5 * b).norm(dim=1) < 0.8 * a.norm(dim=1)).all()  # what slerp avoids


def test_slerp_of_parallel_rows_is_linear():
    a = torch.tensor([[1.0, 2.0]])
    assert torch.allclose(slerp(a, 3 * a, 0.5), 2 * a)


def test_latent_loop_passes_through_every_keyframe_and_closes():
    keys = sample_noise(4 * 3, 10, seed=0).view(4, 3, 10)
    path = latent_loop(keys, 20)
    assert path.shape == (20, 3, 10)
    for k in range(4):
        assert torch.equal(path[5 * k], keys[k])
    # The step from the last frame back to the first is no longer than the others.
    steps = (path.roll(-1, dims=0) - path).norm(dim=-1)
    assert steps[-1].max() <= 1.5 * steps[:-1].mean()


def test_interpolation_gif_has_one_frame_per_step_of_the_grid_size(tmp_path):
    torch.manual_seed(0)
    generator = DCGANGenerator(width=8).eval()
    frames = interpolation_frames(generator, steps=12, n=3, seed=0)
    save_gif(frames, tmp_path / "walk.gif", fps=10)
    with Image.open(tmp_path / "walk.gif") as gif:
        assert gif.n_frames == 12 and gif.is_animated
        assert gif.size == (2 + 3 * 30, 2 + 30)  # 3 walks in one row, 28 px with 2-pixel padding
        assert gif.info["loop"] == 0 and gif.info["duration"] == 100


def test_interpolation_of_a_conditional_generator_has_one_row_per_class(conditional_generator):
    frames = interpolation_frames(conditional_generator, steps=4, n=2, seed=0)
    assert len(frames) == 4
    for frame in frames:
        assert frame.mode == "L" and frame.size == (2 + 2 * 10, 2 + 3 * 10)  # 2 walks, 3 classes of 8x8 images
        rows = [frame.getpixel((6, 6 + 10 * row)) for row in range(3)]
        assert rows == [60, 120, 180]  # row c is class c throughout
