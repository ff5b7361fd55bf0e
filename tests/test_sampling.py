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


def test_noise_std_scales_the_same_draws_and_refuses_what_is_not_a_positive_number():
    standard = sample_noise(64, 100, seed=3)
    wide = sample_noise(64, 100, seed=3, std=1.5)
    assert torch.allclose(wide, 1.5 * standard)  # the same directions, 1.5x as far
    assert abs(wide.std().item() / standard.std().item() - 1.5) < 1e-5
    for bad in (0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(GanforgeError, match="--noise-std must be a positive number"):
            sample_noise(4, 10, seed=0, std=bad)


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


def conditional_checkpoint(tmp_path, classes, channels=1):
    """A small conditional dcgan saved as a checkpoint, with BatchNorm's class tables randomised."""
    from ganforge.checkpoint import FORMAT, FORMAT_VERSION, save_checkpoint

    torch.manual_seed(0)
    args = dict(z_dim=16, width=8, channels=channels, image_size=28, num_classes=len(classes))
    generator = DCGANGenerator(**args)
    for module in generator.modules():
        if isinstance(module, torch.nn.Embedding):
            torch.nn.init.normal_(module.weight)
    checkpoint = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": "gan",
        "model": "dcgan",
        "generator_args": {"generator": args},
        "generators": {"generator": generator.state_dict()},
        "classes": classes,
    }
    save_checkpoint(checkpoint, tmp_path / "cond.pt")
    return tmp_path / "cond.pt", generator.eval()


def test_balanced_labels_cycle_through_the_classes():
    from ganforge.sampling import balanced_labels, grid_columns

    assert balanced_labels(5, 0) is None
    assert balanced_labels(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert balanced_labels(5, 10, [7, 2]).tolist() == [7, 2, 7, 2, 7]
    assert grid_columns(64, 10) == 10 and grid_columns(64, 0) == 8 and grid_columns(64, 100) == 8
    assert grid_columns(64, 3) == 9 and grid_columns(64, 2) == 8 and grid_columns(16, 10) == 10  # near-square


def test_a_conditional_runs_sample_grid_is_whole_rows_of_ten(tiny_run):
    """The training grid of a 10-class run: 60 images, 6 whole rows of 10 (issue #15)."""
    from ganforge.sampling import grid_size
    from ganforge.tasks import load

    run = tiny_run("dcgan", "--conditional")
    grid = Image.open(sorted((run / "samples").glob("step_*.png"))[-1])
    cell = load(run).image_shape[-1] + 2  # 2-pixel padding
    assert grid.size == (10 * cell + 2, 6 * cell + 2)
    assert grid_size(64, 10) == 60 and grid_size(64, 3) == 63 and grid_size(64, 0) == 64


def test_generate_puts_one_class_per_column(tmp_path, tiny_run, conditional_generator):
    """With 3 classes the grid is near-square, 6 columns (two per class), and every column holds one class."""
    import dataclasses

    from ganforge.checkpoint import load_checkpoint
    from ganforge.tasks import load
    from ganforge.tasks.gan.handle import describe_generator, generate

    mlp = load(tiny_run("mlp"))
    description = describe_generator(load_checkpoint(mlp.path), conditional_generator)
    model = dataclasses.replace(mlp, generator=conditional_generator, description=description)
    generate(model, n=30, out=tmp_path / "grid.png")
    grid = np.asarray(Image.open(tmp_path / "grid.png"))  # 8x8 cells with 2-pixel padding
    cells = grid[2::10, 2::10][:5, :6]  # one pixel of each cell: 5 rows, 6 columns
    assert cells.shape == (5, 6)
    for column in range(6):
        assert (cells[:, column] == 60 * (column % 3 + 1)).all(), cells


def test_generate_with_labels_writes_them_to_the_npz(tmp_path):
    from ganforge.tasks.gan.handle import generate

    path, generator = conditional_checkpoint(tmp_path, ["cat", "dog", "eel"])
    sevens = generate(path, n=6, seed=1, labels=2, out=tmp_path / "eels.npz")
    stored = np.load(tmp_path / "eels.npz")
    assert stored["labels"].tolist() == [2] * 6 and np.array_equal(stored["images"], sevens.numpy())
    expected = generate_images(generator, sample_noise(6, 16, seed=1), labels=torch.full((6,), 2))
    assert torch.equal(sevens, expected)
    mixed = generate(path, n=4, seed=1, labels=[0, 2])
    assert not torch.equal(mixed[0], mixed[1])  # other classes, other images


def test_a_synthetic_dataset_round_trips_through_the_imagefolder_loader(tmp_path):
    import torchvision

    from ganforge.data import load_image_folder
    from ganforge.tasks.gan.handle import export_dataset

    path, _ = conditional_checkpoint(tmp_path, ["cat", "dog", "eel"])
    images, labels = export_dataset(path, tmp_path / "synthetic", per_class=4, seed=3)
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    folder = torchvision.datasets.ImageFolder(str(tmp_path / "synthetic"))
    assert folder.classes == ["cat", "dog", "eel"]
    assert sorted(folder.targets) == labels.tolist()
    loaded = load_image_folder(tmp_path / "synthetic", image_size=None, channels=None)
    assert loaded.classes == ["cat", "dog", "eel"]
    assert torch.equal(loaded.images, images) and torch.equal(loaded.labels, labels)  # lossless PNGs, same order
    npz_images, npz_labels = export_dataset(path, tmp_path / "synthetic.npz", per_class=4, seed=3)
    stored = np.load(tmp_path / "synthetic.npz")
    assert np.array_equal(stored["images"], images.numpy()) and np.array_equal(stored["labels"], labels.numpy())


def test_a_grayscale_dataset_draws_its_noise_wider_than_generate_unless_told(tmp_path, caplog):
    from ganforge.config import GRAYSCALE_DATASET_NOISE_STD
    from ganforge.tasks.gan.handle import export_dataset, generate

    path, generator = conditional_checkpoint(tmp_path, ["cat", "dog"])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])  # export_dataset's order: class by class
    with caplog.at_level("INFO", logger="ganforge"):
        images, _ = export_dataset(path, tmp_path / "wide.npz", per_class=3, seed=2)
    wide = sample_noise(6, 16, 2, GRAYSCALE_DATASET_NOISE_STD)
    assert torch.equal(images, generate_images(generator, wide, labels=labels))
    assert "drawing the noise at 1.5x the spread the generator trained on" in caplog.text
    typical, _ = export_dataset(path, tmp_path / "typical.npz", per_class=3, seed=2, noise_std=1.0)
    assert torch.equal(typical, generate_images(generator, sample_noise(6, 16, 2), labels=labels))
    assert not torch.equal(images, typical)
    cycled = torch.tensor([0, 1, 0, 1])  # generate's order: classes in turn
    assert torch.equal(generate(path, n=4, seed=2), generate_images(generator, sample_noise(4, 16, 2), labels=cycled))
    assert torch.equal(
        generate(path, n=4, seed=2, noise_std=0.5),
        generate_images(generator, sample_noise(4, 16, 2, 0.5), labels=cycled),
    )
    (tmp_path / "colour").mkdir()
    colour, colour_generator = conditional_checkpoint(tmp_path / "colour", ["cat", "dog"], channels=3)
    colour_set, _ = export_dataset(colour, tmp_path / "colour.npz", per_class=3, seed=2)  # colour keeps 1x
    assert torch.equal(colour_set, generate_images(colour_generator, sample_noise(6, 16, 2), labels=labels))
    # The command line: --dataset takes the dataset's spread unless --noise-std says otherwise; images take 1.
    from ganforge.cli import main

    def via_cli(*flags) -> np.ndarray:
        out = tmp_path / "cli.npz"
        assert (
            main(["generate", str(path), "--seed", "2", "--out", str(out), "--overwrite", "--no-progress", *flags]) == 0
        )
        return np.load(out)["images"]

    assert np.array_equal(via_cli("--n", "4"), generate(path, n=4, seed=2).numpy())
    assert np.array_equal(via_cli("--n", "4", "--noise-std", "0.5"), generate(path, n=4, seed=2, noise_std=0.5).numpy())
    dataset = ("--per-class", "3", "--dataset", str(tmp_path / "cli.npz"))
    assert np.array_equal(via_cli(*dataset), images.numpy())
    assert np.array_equal(via_cli(*dataset, "--noise-std", "1"), typical.numpy())


def test_class_folder_names_sort_in_label_order():
    from ganforge.sampling import class_folder_names

    assert class_folder_names(["0 - zero", "1 - one"], 2) == ["0 - zero", "1 - one"]
    assert class_folder_names(["zebra", "ant"], 2) == ["0-zebra", "1-ant"]
    assert class_folder_names(["a/b", "c"], 2) == ["0", "1"]
    assert class_folder_names([], 12)[:3] == ["00", "01", "02"]


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
