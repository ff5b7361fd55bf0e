"""Image-to-image translation: the networks, the data layouts, pix2pix and CycleGAN in the shared loop,
exact resume, translate, evaluate and the one-line errors of bad data."""

import io
import json
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from ganforge import TrainConfig, load_checkpoint, train
from ganforge.errors import GanforgeError, UsageError
from ganforge.metrics.translation import l1, psnr, ssim
from ganforge.models.translation import PatchDiscriminator, ResNetTranslator, UNetGenerator, unet_depth
from ganforge.tasks.translation.data import holdout_indices, load_translation_data
from ganforge.tasks.translation.handle import load_translator, translate_images
from test_cli import run_cli
from test_training import QUIET, assert_same_tensors

SIZE = 32  # the tests' crop; images are drawn at 36 and loaded at --load-size 36


def draw_pair(rng: np.random.Generator, size: int = 36) -> tuple[Image.Image, Image.Image]:
    """(outline, filled): a white square outline on black, and the same square filled red on a coloured ground.

    Each outline determines its filled image, as a label map determines a facade.
    """
    outline = Image.new("RGB", (size, size))
    filled = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 100, 3)))
    x, y = (int(v) for v in rng.integers(2, size - 18, 2))
    ImageDraw.Draw(outline).rectangle([x, y, x + 15, y + 15], outline=(255, 255, 255), width=2)
    ImageDraw.Draw(filled).rectangle([x, y, x + 15, y + 15], fill=(230, 20, 20))
    return outline, filled


def side_by_side_folder(root, train: int = 24, test: int = 6, seed: int = 0):
    """pix2pix's layout: train/ and test/, each file A | B."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("test", test)):
        (root / split).mkdir(parents=True)
        for index in range(count):
            a, b = draw_pair(rng)
            pair = Image.new("RGB", (a.width * 2, a.height))
            pair.paste(a, (0, 0))
            pair.paste(b, (a.width, 0))
            pair.save(root / split / f"{index}.png")
    return root


def domains_folder(root, names=("A", "B"), count: int = 12, seed: int = 0):
    """Two folders of the same file names (a pair each)."""
    rng = np.random.default_rng(seed)
    for name in names:
        (root / name).mkdir(parents=True)
    for index in range(count):
        a, b = draw_pair(rng)
        a.save(root / names[0] / f"{index:03d}.png")
        b.save(root / names[1] / f"{index:03d}.jpg")
    return root


def translation_config(data, out, **changes) -> TrainConfig:
    values = dict(
        task="pix2pix",
        data=str(data),
        out=str(out),
        image_size=SIZE,
        load_size=36,
        width=8,
        batch_size=4,
        steps=6,
        checkpoint_every="3",
        sample_every="0",
        threads=1,
        **{name: value for name, value in QUIET.items() if name != "download"},  # a GAN's setting
    )
    return TrainConfig(**(values | changes))


# ---------------------------------------------------------------- networks


@pytest.mark.parametrize("size", [28, 32, 64, 96])
def test_the_unet_is_as_deep_as_the_size_allows_and_keeps_the_shape(size):
    generator = UNetGenerator(in_channels=1, out_channels=3, width=4, image_size=size)
    depth = unet_depth(size)
    assert size % 2**depth == 0 and (depth == 8 or size % 2 ** (depth + 1) or size >> (depth + 1) == 0)
    assert generator(torch.randn(2, 1, size, size)).shape == (2, 3, size, size)


def test_a_side_not_divisible_by_four_is_refused():
    with pytest.raises(ValueError, match="divisible by 4"):
        UNetGenerator(image_size=30)


@pytest.mark.parametrize("size, patch", [(256, 70), (128, 34), (64, 16)])
def test_the_patch_discriminator_sees_a_patch_scaled_to_the_image(size, patch):
    """The receptive field of one output logit, measured by its gradient: pix2pix's 70x70 at 256 px."""
    torch.manual_seed(0)
    # BatchNorm in eval mode acts pixel by pixel; instance norm would join every pixel through its statistics.
    discriminator = PatchDiscriminator(in_channels=1, width=4, image_size=size, norm="batch").eval()
    with torch.no_grad():
        for module in discriminator.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.fill_(0.01)  # no weight can cancel a path: every pixel in the field counts
    image = torch.randn(1, 1, size, size, requires_grad=True)
    logits = discriminator(image)
    logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2].backward()
    rows = image.grad[0, 0].abs().sum(1).nonzero()
    assert rows.max() - rows.min() + 1 == patch


def test_dropout_only_in_training_and_instance_norm_is_the_same_alone_or_in_a_batch():
    torch.manual_seed(0)
    generator = UNetGenerator(in_channels=3, out_channels=3, width=8, image_size=64, dropout=True)
    x = torch.randn(3, 3, 64, 64)
    generator.train()
    assert not torch.equal(generator(x), generator(x))  # dropout draws new masks
    images = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    batch = translate_images(generator, images)
    assert generator.training  # translate_images restores the mode
    assert torch.equal(batch, translate_images(generator, images))  # eval: no dropout
    alone = torch.cat([translate_images(generator, images[i : i + 1]) for i in range(3)])
    assert (batch.int() - alone.int()).abs().max() <= 1  # per-image statistics: no batch in the result


@pytest.mark.parametrize("height, width", [(37, 50), (64, 64), (20, 100)])
def test_any_size_translates_to_the_same_size(height, width):
    for generator in (UNetGenerator(width=4, image_size=32), ResNetTranslator(width=4, image_size=32)):
        images = torch.randint(0, 256, (1, 3, height, width), dtype=torch.uint8)
        assert translate_images(generator, images).shape == (1, 3, height, width)


# ---------------------------------------------------------------- metrics


def test_psnr_l1_and_ssim_by_hand():
    x = torch.full((1, 1, 16, 16), 100, dtype=torch.uint8)
    y = x + 10
    assert l1(x, y).item() == pytest.approx(10 / 255)
    assert psnr(x, y).item() == pytest.approx(-10 * math.log10((10 / 255) ** 2))
    # Constant images: no variance, so SSIM is the luminance term alone, (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1).
    mx, my, c1 = 100 / 255, 110 / 255, 0.01**2
    assert ssim(x, y).item() == pytest.approx((2 * mx * my + c1) / (mx**2 + my**2 + c1))
    noise = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert ssim(noise, noise).tolist() == pytest.approx([1.0, 1.0])
    assert psnr(noise, noise).tolist() == [100.0, 100.0]
    noisier = [(noise + sigma * torch.randn(noise.shape)).clamp(0, 255).round().byte() for sigma in (5, 20, 60)]
    similarity = [ssim(noise, n).mean().item() for n in noisier]
    assert similarity[0] > similarity[1] > similarity[2]
    assert ssim(noise, noisier[1]).tolist() == pytest.approx(ssim(noisier[1], noise).tolist())  # symmetric


# ---------------------------------------------------------------- data


def test_the_layouts_give_the_same_pairs(tmp_path):
    side = side_by_side_folder(tmp_path / "side", train=10, test=4)
    data, test, split = load_translation_data(side, "AtoB", 36, SIZE, None, 0.1, need_pairs=True)
    assert split == "test" and data.paired and data.a.shape == (10, 3, 36, 36) and test.a.shape == (4, 3, SIZE, SIZE)
    flipped, _, _ = load_translation_data(side, "BtoA", 36, SIZE, None, 0.1, need_pairs=True)
    assert torch.equal(flipped.a, data.b) and torch.equal(flipped.b, data.a)
    # The first pair drawn again, as two folders: the same pixels as the side-by-side file's halves.
    folders = domains_folder(tmp_path / "two", count=10)
    data2, held, split2 = load_translation_data(folders, "AtoB", 36, SIZE, None, 0.2, need_pairs=True)
    assert split2 == "held-out" and len(data2.a) == 8 and len(held.a) == 2 and data2.paired
    kept, _ = holdout_indices(10, 0.2)
    assert torch.equal(data.a[kept], data2.a)  # seed 0 draws the same pairs: the same pixels either way
    # B was saved as JPEG in the folders: near its pair, far from the others.
    distance = lambda x, y: (x.float() - y.float()).abs().mean().item()  # noqa: E731
    assert distance(data.b[kept], data2.b) < 0.5 * distance(data.b[kept], data2.b.roll(1, 0))


def test_unpaired_domains_for_cyclegan_and_refused_by_pix2pix(tmp_path):
    root = domains_folder(tmp_path / "d", names=("trainA", "trainB"), count=6)
    (root / "trainB" / "005.jpg").rename(root / "trainB" / "other.jpg")
    data, _, _ = load_translation_data(root, "AtoB", 36, SIZE, None, 0.2, need_pairs=False)
    assert not data.paired
    with pytest.raises(GanforgeError, match=r"trainA/005.png has no trainB/005\.\*.*pix2pix needs the same file"):
        load_translation_data(root, "AtoB", 36, SIZE, None, 0.2, need_pairs=True)


def test_grayscale_rgba_and_16_bit_images_load(tmp_path):
    root = tmp_path / "modes"
    for name in ("A", "B"):
        (root / name).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(5):
        grey16 = (rng.integers(0, 65536, (40, 30))).astype(np.uint16)
        Image.fromarray(grey16).save(root / "A" / f"{index}.png")  # 16-bit grayscale, not square
        rgba = rng.integers(0, 256, (30, 40, 4)).astype(np.uint8)
        Image.fromarray(rgba, "RGBA").save(root / "B" / f"{index}.png")
    data, test, _ = load_translation_data(root, "AtoB", 36, SIZE, None, 0.2, need_pairs=True)
    assert data.a.shape[1:] == (1, 36, 36) and data.b.shape[1:] == (3, 36, 36)
    assert data.a.float().std() > 30  # 16 bits scaled down to 8, not clipped to white


def test_training_and_translate_read_an_exif_rotated_jpeg_and_a_16_bit_png_alike(tmp_path):
    """One reader (data.images): the test split training scores and grids with, and what ``translate`` and the
    page feed the translator, are the same tensor; upright by the EXIF orientation, 16 bits scaled, not clipped."""
    from ganforge.tasks.translation.handle import read_input

    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    upright = {}
    for split in ("train", "test"):
        for name in ("A", "B"):
            (root / f"{split}{name}").mkdir(parents=True)
        for index in range(3):
            deep = rng.integers(0, 65536, (24, 40)).astype(np.uint16)  # 16-bit grayscale, above 255 throughout
            Image.fromarray(deep).save(root / f"{split}A" / f"{index}.png")
            stored = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
            exif = Image.Exif()
            exif[0x0112] = 6  # orientation: the camera was turned; shown rotated 90 degrees clockwise
            Image.fromarray(stored).save(root / f"{split}B" / f"{index}.jpg", exif=exif, quality=95)
            upright[split, index] = np.asarray(Image.open(root / f"{split}B" / f"{index}.jpg").rotate(-90, expand=True))
    _, test, split = load_translation_data(root, "AtoB", 36, SIZE, None, 0.1, need_pairs=False)
    assert split == "test" and test.a.shape[1] == 1 and test.b.shape[1] == 3
    for index in range(3):
        a = read_input(root / "testA" / f"{index}.png", 1, SIZE)[0]
        b = read_input(root / "testB" / f"{index}.jpg", 3, SIZE)[0]
        assert torch.equal(a, test.a[index]) and torch.equal(b, test.b[index])
        assert a.float().std() > 30  # the 16 bits scaled down to 8: not a white square of clipped values
        whole = read_input(root / "testB" / f"{index}.jpg", 3, 0)[0]  # its own size: upright, 40 high, 24 wide
        assert whole.shape == (3, 40, 24) and np.array_equal(whole.permute(1, 2, 0).numpy(), upright["test", index])


@pytest.mark.parametrize(
    "damage, message",
    [
        ("odd width", r"odd\.png is 71x36: its halves differ in size"),
        ("empty", r"no images .* found in .*test"),
        ("unreadable", r"cannot read .*broken\.png as an image"),
        ("nothing", r"holds no translation data: expected trainA/ and trainB/"),
    ],
)
def test_bad_translation_data_is_one_line_and_nothing_is_written(tmp_path, capsys, damage, message):
    root = side_by_side_folder(tmp_path / "data", train=6, test=2)
    if damage == "odd width":
        Image.new("RGB", (71, 36)).save(root / "train" / "odd.png")
    elif damage == "empty":
        for path in (root / "test").iterdir():
            path.unlink()
    elif damage == "unreadable":
        (root / "train" / "broken.png").write_bytes(b"not a png")
    else:
        (root / "train").rename(root / "photos")  # no layout is left that ganforge knows
    before = sorted(p.name for p in root.rglob("*"))
    args = ["train", "--task", "pix2pix", "--data", root, "--image-size", SIZE, "--out", tmp_path / "run"]
    code, _, err = run_cli(capsys, *args)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert sorted(p.name for p in root.rglob("*")) == before and not (tmp_path / "run").exists()


def test_flags_of_the_wrong_task_are_refused(tmp_path, capsys):
    with pytest.raises(UsageError, match="--lambda-l1 belongs to --task pix2pix, not --task gan"):
        TrainConfig(lambda_l1=10.0)
    with pytest.raises(UsageError, match="--model unet is for --task pix2pix or cyclegan, not --task gan"):
        TrainConfig(model="unet").validate()
    with pytest.raises(UsageError, match="--lambda-cycle belongs to --task cyclegan, not --task pix2pix"):
        TrainConfig(task="pix2pix", data=str(tmp_path), lambda_cycle=5.0)
    with pytest.raises(UsageError, match="--diffaug belongs to --task gan, not --task cyclegan"):
        TrainConfig(task="cyclegan", data=str(tmp_path), diffaug=True)
    with pytest.raises(UsageError, match="needs --data DIR"):
        TrainConfig(task="pix2pix").validate()
    # The command line: accepted without a word and saved, before the tasks' settings had owners.
    args = ["train", "--task", "pix2pix", "--data", tmp_path, "--z-dim", "64", "--r1-every", "4", "--print-config"]
    code, _, err = run_cli(capsys, *args, "--diffaug-policy", "color")
    assert code == 2 and err.strip() == "ganforge: error: --z-dim belongs to --task gan, not --task pix2pix", err
    for flag_ in ("--r1-every", "--diffaug-policy", "--mirror", "--eval-samples", "--data-root"):
        value = [] if flag_ == "--mirror" else ["1" if flag_ != "--diffaug-policy" else "color"]
        code, _, err = run_cli(
            capsys, "train", "--task", "cyclegan", "--data", tmp_path, flag_, *value, "--print-config"
        )
        assert code == 2 and f"{flag_} belongs to --task gan, not --task cyclegan" in err


# ---------------------------------------------------------------- training


def test_pix2pix_learns_the_mapping(tmp_path):
    """Held-out L1 falls well below the untrained network's, and best.pt keeps the best evaluation."""
    data = side_by_side_folder(tmp_path / "data", train=24, test=6)
    config = translation_config(data, tmp_path / "run", steps=150, eval_every="75", width=16, lr=1e-3)
    result = train(config)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("event") == "eval"]
    assert [r["step"] for r in evals] == [75, 150]
    untrained = load_translator(tmp_path / "run" / "checkpoints" / "ckpt_00000000.pt", "cpu")
    from ganforge.tasks.translation.evaluate import score_translator

    _, test, _ = load_translation_data(data, "AtoB", 36, SIZE, None, 0.1, need_pairs=True)
    before = score_translator(untrained.generators, test)
    assert evals[-1]["l1"] < 0.6 * before["l1"] and evals[-1]["ssim"] > before["ssim"] + 0.1
    # The L1 term is what makes pix2pix draw the target's structure: measured SSIM 0.65-0.67 with it (seeds 0-2),
    # 0.43 without it (review turn 3, row 7: the looser bounds above passed without it).
    assert evals[-1]["ssim"] > 0.55, evals[-1]
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["eval"]["l1"] == min(r["l1"] for r in evals)
    assert result.step == 150


def test_cyclegan_learns_to_translate_back(tmp_path):
    """The held-out cycle error A -> B -> A falls far below the untrained networks'. Measured at step 75: 0.088
    with the cycle term, 0.22 without it, 0.57 untrained (review turn 3, row 8). No identity term: alone it keeps
    both generators near the identity, whose cycle error is as small (0.082 measured)."""
    from ganforge.tasks.translation.evaluate import score_translator

    data = side_by_side_folder(tmp_path / "data", train=24, test=6)
    changes = dict(task="cyclegan", lambda_identity=0.0, steps=75, eval_every="75", width=16, lr=1e-3)
    train(translation_config(data, tmp_path / "run", **changes))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    (last,) = [r for r in records if r.get("event") == "eval"]
    untrained = load_translator(tmp_path / "run" / "checkpoints" / "ckpt_00000000.pt", "cpu")
    _, test, _ = load_translation_data(data, "AtoB", 36, SIZE, None, 0.1, need_pairs=False)
    before = score_translator(untrained.generators, test)
    assert last["step"] == 75 and last["cycle_l1"] < 0.15 and before["cycle_l1"] > 0.4, (last, before)


def test_the_image_pool_shows_a_past_fake_half_the_time_and_keeps_the_new_one_in_its_place():
    """CycleGAN's history of fakes (review turn 3, row 10: a pool that never swapped passed every test)."""
    from types import SimpleNamespace

    from ganforge.tasks.translation.steps import from_history

    state = SimpleNamespace(noise_rng=torch.Generator().manual_seed(0), extras={})
    first = torch.arange(4.0).view(4, 1, 1, 1)  # each image a number, to follow it
    assert torch.equal(from_history(state, "B", first, 4), first)  # filling up: each shown as it comes
    filled = state.extras["pools"]["B"].clone()
    assert torch.equal(filled, first)
    fakes = 100 + torch.arange(64.0).view(64, 1, 1, 1)
    shown = from_history(state, "B", fakes, 4)
    swapped = [i for i in range(64) if not torch.equal(shown[i], fakes[i])]
    assert 20 <= len(swapped) <= 44  # about half: 32 +- 3 standard deviations
    for i in swapped:  # a past fake: one of the filled pool's, or one given earlier in this batch
        assert shown[i].item() < 4 or 100 <= shown[i].item() < 100 + i
    # Nothing is lost or shown twice: every image given is either shown now or kept in the pool.
    pool = state.extras["pools"]["B"]
    assert len(pool) == 4 and not torch.equal(pool, filled)
    assert sorted(torch.cat([shown, pool]).flatten().tolist()) == sorted(torch.cat([filled, fakes]).flatten().tolist())
    assert torch.equal(from_history(state, "A", fakes, 0), fakes)  # --pool-size 0: only the newest


def identical_pairs_folder(root, count: int = 8):
    """pix2pix's layout, every file one noise image beside itself: A == B, and any two crops differ."""
    noise = np.random.default_rng(0).integers(0, 256, (36, 36, 3), dtype=np.uint8)
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for index in range(count):
            Image.fromarray(np.concatenate([noise, noise], axis=1)).save(root / split / f"{index}.png")
    return root


@pytest.mark.parametrize("task", ["pix2pix", "cyclegan"])
def test_a_pair_shares_its_crop_and_flip_and_unpaired_images_do_not(tmp_path, task):
    """Review turn 3, row 11: misaligned pix2pix pairs (B cropped apart from A) passed the learning test."""
    from ganforge.distributed import Distributed
    from ganforge.training import prepare_run

    data = identical_pairs_folder(tmp_path / "data")
    config = translation_config(data, tmp_path / "run", task=task, batch_size=8)
    _, trainer = prepare_run(config, None, Distributed(), torch.device("cpu"))
    for step in range(3):
        a, b = trainer.next_batch(step)  # (8, 3, 32, 32) each
        assert a.shape == b.shape == (8, 3, SIZE, SIZE)
        same = [torch.equal(x, y) for x, y in zip(a, b)]
        assert all(same) if task == "pix2pix" else sum(same) <= 2, same
        assert len({x.sum().item() for x in a}) > 1  # the crops and flips vary along the batch


@pytest.mark.parametrize("task", ["pix2pix", "cyclegan"])
def test_a_resumed_translation_run_is_bit_identical(tmp_path, task):
    """Crops, flips, dropout, the history of fakes, the moving averages and the optimisers all continue exactly."""
    data = side_by_side_folder(tmp_path / "data", train=12, test=2)
    # No decay: its schedule follows each invocation's --steps, and the split run's first part has 3, not 6.
    extra = dict(lr_decay=0.0) | (dict(pool_size=3, batch_size=2, ema=True) if task == "cyclegan" else {})
    whole = translation_config(data, tmp_path / "whole", task=task, **extra)
    train(whole)
    train(translation_config(data, tmp_path / "split", task=task, steps=3, **extra))
    from ganforge import resume

    resume(tmp_path / "split", steps=6)
    resumed, uninterrupted = load_checkpoint(tmp_path / "split"), load_checkpoint(tmp_path / "whole")
    assert resumed["step"] == uninterrupted["step"] == 6
    assert set(resumed["generators"]) == ({"AtoB", "BtoA"} if task == "cyclegan" else {"AtoB"})
    for key in ("generators", "discriminators", "optimizers", "noise_rng"):
        assert_same_tensors({key: resumed[key]}, {key: uninterrupted[key]})
    if task == "pix2pix":
        assert resumed["extras"] == uninterrupted["extras"] == {}  # no history of fakes
    else:
        assert len(resumed["extras"]["pools"]["A"]) == 3  # the pool filled (its swaps: the pool's own test)
        assert_same_tensors({"extras": resumed["extras"]}, {"extras": uninterrupted["extras"]})
        assert_same_tensors(resumed["ema_generators"], uninterrupted["ema_generators"])
        assert set(resumed["ema_generators"]) == {"AtoB", "BtoA"}


def test_a_translator_trains_in_the_precision_asked_for_and_resumes_exactly(tmp_path, monkeypatch):
    """--precision bf16 runs the steps' convolutions in bfloat16, and a resumed run matches an unbroken one; auto
    is bf16 where the CPU computes in it; pix2pix's default is float32 (review turn 3, row 12)."""
    import ganforge.device
    from test_speed_options import output_dtypes

    data = side_by_side_folder(tmp_path / "data", train=8, test=2)
    settings = dict(steps=2, batch_size=2, lr_decay=0.0, precision="bf16")
    with output_dtypes() as seen:
        train(translation_config(data, tmp_path / "straight", **settings))
    # Each step: D's 3 convolutions in each of its 3 passes (real pair, translated pair, G's update); G's too.
    assert seen["Conv2d", torch.bfloat16] >= 2 * 3 * 3 and seen["ConvTranspose2d", torch.bfloat16] >= 2, seen
    train(translation_config(data, tmp_path / "split", **settings | dict(steps=1)))
    from ganforge import resume

    resume(tmp_path / "split", steps=2)
    straight, resumed = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split")
    assert straight["step"] == resumed["step"] == 2
    for key in ("generators", "discriminators", "ema_generators", "optimizers", "noise_rng"):
        assert_same_tensors({key: resumed[key]}, {key: straight[key]})
    for flags, precision, bf16 in [
        ({"avx512_bf16"}, "auto", True),
        (set(), "auto", False),
        ({"avx512_bf16"}, None, False),  # not asked: pix2pix's float32
    ]:
        monkeypatch.setattr(ganforge.device, "cpu_flags", lambda flags=flags: flags)
        changes = dict(steps=1, batch_size=2) | ({"precision": precision} if precision else {})
        with output_dtypes() as seen:
            train(translation_config(data, tmp_path / f"{precision}-{len(flags)}", **changes))
        assert (seen["Conv2d", torch.bfloat16] > 0) == bf16 and seen["Conv2d", torch.float32] > 0, (flags, seen)


def test_lr_decays_linearly_to_zero_over_the_last_share(tmp_path):
    data = side_by_side_folder(tmp_path / "data", train=8, test=2)
    train(translation_config(data, tmp_path / "run", steps=8, lr_decay=0.5, lr=1e-3))
    lr = load_checkpoint(tmp_path / "run")["optimizers"]["g"]["param_groups"][0]["lr"]
    # Step 7 (the last one trained) is 3 steps into a decay of 4 from step 4: 1 - 3/5.
    assert lr == pytest.approx(1e-3 * (1 - 3 / 5))


def test_translate_gives_the_training_grids_output(tmp_path, capsys):
    """The grid's middle column is what ``ganforge translate`` writes for the same held-out input file."""
    data = domains_folder(tmp_path / "data", names=("trainA", "trainB"), count=8)
    domains_folder(tmp_path / "extra", names=("testA", "testB"), count=3, seed=1)
    for name in ("testA", "testB"):
        (tmp_path / "extra" / name).rename(data / name)
    train(translation_config(data, tmp_path / "run", steps=4, sample_every="4", batch_size=2))
    grid = np.asarray(Image.open(tmp_path / "run" / "samples" / "step_0000004.png"))
    cell = lambda row, column: grid[2 + row * (SIZE + 2) :][:SIZE, 2 + column * (SIZE + 2) :][:, :SIZE]  # noqa: E731
    out = tmp_path / "out"
    code, said, err = run_cli(capsys, "translate", tmp_path / "run", data / "testA", "--out", out, "--no-progress")
    assert code == 0, err
    assert "wrote 3 translated images" in said
    for row in range(3):
        assert np.array_equal(np.asarray(Image.open(out / f"{row:03d}.png")), cell(row, 1))
    # Again: refused without --overwrite, naming the file.
    code, _, err = run_cli(capsys, "translate", tmp_path / "run", data / "testA" / "000.png", "--out", tmp_path / "out")
    assert code == 2 and "000.png" in err and "--overwrite" in err


def test_pix2pix_keeps_a_moving_average_by_default_and_cyclegan_does_not(tmp_path):
    resolved = lambda **given: TrainConfig(data=str(tmp_path), **given).resolved()  # noqa: E731
    assert resolved(task="pix2pix").ema is True and resolved(task="pix2pix", ema=False).ema is False
    assert resolved(task="cyclegan").ema is False and resolved(task="cyclegan", ema=True).ema is True


def test_ema_translators_are_what_grids_scores_and_translate_use(tmp_path, capsys):
    """With --ema the run keeps a moving average per translator: the grid, the evaluation, best.pt's score and
    ``ganforge translate`` all use it; ``--no-ema`` translates with the latest weights."""
    data = side_by_side_folder(tmp_path / "data", train=12, test=4)
    config = translation_config(
        data,
        tmp_path / "run",
        steps=8,
        ema=True,
        ema_half_life=20,
        ema_warmup=0,
        sample_every="8",
        eval_every="8",
        lr=1e-3,
    )
    train(config)
    checkpoint = load_checkpoint(tmp_path / "run")
    latest, averaged = checkpoint["generators"]["AtoB"], checkpoint["ema_generators"]["AtoB"]
    assert any(not torch.equal(latest[k], averaged[k]) for k in latest if latest[k].is_floating_point())
    from ganforge.tasks.translation.evaluate import score_translator

    _, test, _ = load_translation_data(data, "AtoB", 36, SIZE, None, 0.1, need_pairs=True)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    record = [r for r in records if r.get("event") == "eval"][-1]
    with_ema = score_translator(load_translator(tmp_path / "run", "cpu").generators, test)
    without = score_translator(load_translator(tmp_path / "run", "cpu", ema=False).generators, test)
    assert record["step"] == 8 and record["l1"] == pytest.approx(with_ema["l1"], rel=1e-6)
    assert with_ema["l1"] != pytest.approx(without["l1"], rel=1e-4)
    code, out, err = run_cli(capsys, "evaluate", tmp_path / "run", "--json")  # review turn 3, row 5
    assert code == 0, err
    assert json.loads(out)["l1"] == pytest.approx(with_ema["l1"], rel=1e-6)
    # The grid's middle column and translate's file are the average's output; --no-ema's are not.
    grid = np.asarray(Image.open(tmp_path / "run" / "samples" / "step_0000008.png"))
    cell = grid[2:][:SIZE, 2 + SIZE + 2 :][:, :SIZE]
    source = tmp_path / "one.png"
    Image.fromarray(test.a[0].permute(1, 2, 0).numpy()).save(source)
    for flag, expected in (("--ema", True), ("--no-ema", False)):
        out = tmp_path / flag
        code, _, err = run_cli(capsys, "translate", tmp_path / "run", source, "--out", out, "--no-progress", flag)
        assert code == 0, err
        assert np.array_equal(np.asarray(Image.open(out / "one.png")), cell) == expected


def test_evaluate_a_translation_run_matches_its_last_evaluation(tmp_path, capsys):
    data = side_by_side_folder(tmp_path / "data", train=8, test=10)
    train(translation_config(data, tmp_path / "run", task="cyclegan", steps=4, eval_every="4", batch_size=1))
    code, out, err = run_cli(capsys, "evaluate", tmp_path / "run", "--json")
    assert code == 0, err
    scores = json.loads(out)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if r.get("event") == "eval"][-1]
    assert scores["task"] == "cyclegan" and scores["pairs"] == 10
    for name in ("l1", "psnr", "ssim", "cycle_l1", "swd"):
        assert scores[name] == pytest.approx(last[name], rel=1e-6)
    assert "fid" not in scores  # auto: no network for 3x32x32 outputs
    # With a feature extractor: FID and KID of the outputs against the targets (not the inputs).
    code, out, err = run_cli(capsys, "evaluate", tmp_path / "run", "--json", "--features", "mnist")
    assert code == 0, err
    scores = json.loads(out)
    from ganforge.metrics.features import MNISTFeatures
    from ganforge.metrics.scores import fid

    _, test, _ = load_translation_data(data, "AtoB", 36, SIZE, None, 0.1, need_pairs=True, test_only=True)
    extractor = MNISTFeatures(torch.device("cpu"))
    outputs = load_translator(tmp_path / "run", "cpu").translate(test.a)
    expected = fid(extractor(outputs)[0], extractor(test.b)[0])
    assert scores["features"] == "mnist" and scores["fid"] == pytest.approx(expected, rel=1e-6)
    assert expected != pytest.approx(fid(extractor(test.a)[0], extractor(test.b)[0]), rel=1e-3)
    # Too few test images for a covariance: one line.
    small = side_by_side_folder(tmp_path / "small", train=2, test=3)
    capsys.readouterr()  # the digits classifier's warnings about the calls above
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "run", "--reference", small, "--features", "mnist")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "at least 10 test images" in err, err


def test_translate_bad_inputs_are_one_line(tmp_path, capsys):
    data = side_by_side_folder(tmp_path / "data", train=4, test=1)
    train(translation_config(data, tmp_path / "run", steps=1, batch_size=2))
    (tmp_path / "notes.png").write_text("not an image")
    huge = tmp_path / "huge.png"
    Image.new("1", (5000, 4000)).save(huge)
    capsys.readouterr()  # the training's log
    for args, message, code_wanted in [
        ([tmp_path / "notes.png"], "cannot read .*notes.png as an image", 1),
        ([huge], "huge.png is 5000x4000, over the 16,777,216-pixel cap", 1),
        ([tmp_path / "missing.png"], "missing.png does not exist", 1),
        ([data / "test", "--direction", "BtoA"], "translates AtoB only", 2),
    ]:
        code, _, err = run_cli(capsys, "translate", tmp_path / "run", *args, "--out", tmp_path / "out", "--no-progress")
        assert code == code_wanted and len(err.strip().splitlines()) == 1, err
        assert re.search(message, err), err
    code, _, err = run_cli(capsys, "generate", tmp_path / "run")
    assert code == 2 and "ganforge generate serves gan runs; " in err and "is a pix2pix run (it serves: " in err


# ---------------------------------------------------------------- serve and export


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(pix2pix run, cyclegan run, their data): a few steps of each on drawn pairs.

    pix2pix keeps its moving average by default: here with no warm-up and a half-life of one step, so that it lies
    clearly apart from the latest weights (review turn 3, rows 3 and 4: inside the warm-up the two differed by
    2.6e-5, and an export or page of the latest weights passed for the average's).
    """
    root = tmp_path_factory.mktemp("translation")
    data = side_by_side_folder(root / "data", train=8, test=2)
    train(translation_config(data, root / "pix2pix", steps=2, batch_size=2, ema_warmup=0.0, ema_half_life=2.0))
    train(translation_config(data, root / "cyclegan", task="cyclegan", steps=2, batch_size=2))
    return root / "pix2pix", root / "cyclegan", data


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_serve_translates_an_upload_as_translate_does(trained, tmp_path, capsys):
    pytest.importorskip("fastapi", reason="ganforge serve needs fastapi: pip install -e '.[serve]'")
    from fastapi.testclient import TestClient

    from ganforge.serve import create_app

    pix2pix, cyclegan, data = trained
    picture = data / "test" / "0.png"  # a pair side by side, as the run trained on: both translate its A half
    code, _, err = run_cli(capsys, "translate", pix2pix, picture, "--out", tmp_path / "cli", "--no-progress")
    assert code == 0, err
    with TestClient(create_app(pix2pix)) as client:
        assert client.get("/api/model").json()["directions"] == ["AtoB"]
        page = client.get("/")
        assert (
            page.status_code == 200
            and 'id="file"' in page.text
            and "frame-ancestors" in page.headers["content-security-policy"]
        )
        answer = client.post("/api/translate", content=picture.read_bytes())
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        served = np.asarray(Image.open(io.BytesIO(answer.content)))
        assert np.array_equal(served, np.asarray(Image.open(tmp_path / "cli" / "0.png")))
        assert answer.headers["x-ganforge-input-half"] == "left"  # the page says which half it translated
        own_size = client.post("/api/translate?size=0", content=picture.read_bytes())
        assert Image.open(io.BytesIO(own_size.content)).size == (36, 36)  # the half, at its own size
    with TestClient(create_app(cyclegan)) as client:
        back = client.post("/api/translate?direction=BtoA", content=picture.read_bytes())
        assert back.status_code == 200 and Image.open(io.BytesIO(back.content)).size == (SIZE, SIZE)


def test_bad_uploads_get_4xx_with_one_line(trained, monkeypatch):
    pytest.importorskip("fastapi", reason="ganforge serve needs fastapi: pip install -e '.[serve]'")
    from fastapi.testclient import TestClient

    import ganforge.tasks.translation.web
    from ganforge.serve import create_app

    pix2pix, _, data = trained
    huge = png_bytes(Image.new("1", (5000, 4000)))
    monkeypatch.setattr(ganforge.tasks.translation.web, "MAX_UPLOAD_BYTES", 50_000)
    with TestClient(create_app(pix2pix)) as client:
        for query, body, status, message in [
            ("", b"", 422, "image: the request body is empty"),
            ("", b"GIF89a not really", 422, "image: cannot read the upload as an image"),
            ("", huge, 422, "image: the upload is 5000x4000, over the 16,777,216-pixel cap"),
            ("", bytes(60_000), 413, "image: over the 50,000-byte limit"),
            ("?direction=BtoA", (data / "test" / "0.png").read_bytes(), 422, "this pix2pix run translates AtoB only"),
            ("?direction=up", b"x", 422, "direction: String should match pattern"),
            ("?size=-1", b"x", 422, "size: Input should be greater than or equal to 0"),
        ]:
            answer = client.post("/api/translate" + query, content=body)
            assert answer.status_code == status, (query, answer.text)
            assert message in answer.json()["detail"] and "\n" not in answer.json()["detail"]


@pytest.mark.parametrize("which, direction", [("pix2pix", "AtoB"), ("cyclegan", "BtoA")])
def test_onnx_export_translates_any_multiple_of_the_stride_as_pytorch_does(trained, tmp_path, capsys, which, direction):
    onnxruntime = pytest.importorskip("onnxruntime", reason="the ONNX test needs onnxruntime: pip install -e '.[dev]'")
    pix2pix, cyclegan, _ = trained
    run = pix2pix if which == "pix2pix" else cyclegan
    out = tmp_path / "translator.onnx"
    code, said, err = run_cli(capsys, "export", run, "--format", "onnx", "--out", out, "--direction", direction)
    assert code == 0, err
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    generator = load_translator(run, "cpu").generator(direction).float()
    latest = load_translator(run, "cpu", ema=False).generator(direction).float()
    stride = generator.stride
    side = stride * max(1, 32 // stride)  # at least 32 px: the ResNet's reflection pads need 2 px at 1/4
    for batch, height, width in [(1, side, 3 * side), (3, 2 * side, side + stride)]:
        x = torch.rand(batch, generator.in_channels, height, width) * 2 - 1
        (onnx_out,) = session.run(None, {"images": x.numpy()})
        with torch.no_grad():
            expected = generator.eval()(x)
        assert onnx_out.shape == tuple(expected.shape)
        assert np.abs(onnx_out - expected.numpy()).max() < 1e-4
        if which == "pix2pix":  # the moving average's weights, not the latest ones
            with torch.no_grad():
                assert np.abs(onnx_out - latest.eval()(x).numpy()).max() > 1e-3
    meta = json.loads(session.get_modelmeta().custom_metadata_map["ganforge"])
    assert meta["task"] == which and meta["direction"] == direction and meta["stride"] == stride
    assert meta["ema"] == (which == "pix2pix")  # pix2pix keeps a moving average by default, and exports it
    code, _, err = run_cli(capsys, "export", run, "--format", "torchscript", "--out", tmp_path / "t.pt")
    assert code == 2 and f"a {which} run exports as pt2, onnx, safetensors or hub, not torchscript" in err


SERVE_MEMORY_BOUND = 1.5 * 2**30  # bytes: the most a translation page's process may reach under this test's load
SLOW_TRANSLATION = """
import sys, time
import ganforge.tasks.translation.web as web
translate = web.Translator.png
if sys.argv[1] == "layers":  # a translation of minutes, 0.5 s a layer, as a huge image's would be
    def png(self, upload, direction, size, half=None):
        network = self.model.generator(direction)
        hooks = [module.register_forward_pre_hook(lambda *_: time.sleep(0.5)) for module in network.modules()]
        try:
            return translate(self, upload, direction, size, half)
        finally:
            for hook in hooks:
                hook.remove()
    web.Translator.png = png
else:  # a translation of minutes that no layer boundary interrupts
    web.Translator.png = lambda self, *args: (time.sleep(120), translate(self, *args))[1]
from ganforge.cli import main
sys.exit(main(sys.argv[2:]))
"""


def start_server(args: list, cwd) -> tuple:
    """A ``ganforge serve`` process on a free 127.0.0.1 port: (process, base URL)."""
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, *map(str, args), "--port", "0", "--threads", "1"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()  # "ganforge: serving RUN at http://127.0.0.1:PORT/ (Ctrl-C to stop)"
    match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
    assert match, line + process.stderr.read()
    return process, match.group(1)


def stopped_within(process, seconds: float) -> bool:
    """SIGTERM, then whether ``process`` exits within ``seconds`` (killed either way)."""
    import signal
    import subprocess
    import time

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False
    return time.monotonic() - started < seconds


@pytest.mark.slow
def test_serve_under_a_bounded_load_answers_every_normal_request_and_stops_on_sigterm(trained, tmp_path):
    """Review turn 3, B2 and B9: one tiny request (a 1x1 PNG at size=4096) held the translation lock for minutes
    and took 8 GB; a client leaving mid-upload put a traceback in the server's log; a non-image's 422 showed a
    heap address; SIGTERM did not stop a server that was translating. Here: 24 normal requests from 4 clients,
    5 oversized ones and 2 dropped uploads; every normal one answered, every oversized one refused at once, the
    process under SERVE_MEMORY_BOUND, and SIGTERM ending it within 5 s, also in the middle of a translation."""
    import socket
    import threading
    import time
    import urllib.error
    import urllib.request

    pix2pix, _, data = trained
    normal = (data / "test" / "0.png").read_bytes()
    tiny, big = png_bytes(Image.new("RGB", (1, 1))), png_bytes(Image.new("RGB", (2000, 1500)))
    process, url = start_server(["-m", "ganforge", "serve", pix2pix], tmp_path)

    def post(body: bytes, query: str = "") -> tuple[int, bytes, float]:
        started = time.monotonic()
        request = urllib.request.Request(f"{url}api/translate{query}", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, answer.read(), time.monotonic() - started
        except urllib.error.HTTPError as error:
            return error.code, error.read(), time.monotonic() - started

    try:
        answers = []
        clients = [threading.Thread(target=lambda: answers.extend(post(normal) for _ in range(6))) for _ in range(4)]
        for client in clients:
            client.start()
        oversized = [
            post(tiny, "?size=4096"),
            post(big, "?size=0"),
            post(big, "?size=2048"),
            post(normal, "?size=1500"),
        ]
        oversized.append(post(b"hello"))
        for _ in range(2):  # uploads whose clients leave half-way
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")))) as raw:
                raw.sendall(b"POST /api/translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n0123")
        for client in clients:
            client.join(timeout=120)
        assert [status for status, _, _ in answers] == [200] * 24
        assert all(Image.open(io.BytesIO(body)).size == (SIZE, SIZE) for _, body, _ in answers)
        for status, body, seconds in oversized[:4]:
            assert status == 422 and seconds < 5 and b"over this server's 2,097,152" in body, body
        status, body, _ = oversized[4]
        detail = json.loads(body)["detail"]
        assert status == 422 and detail == "image: cannot read the upload as an image: cannot identify image file"
        peak = int(re.search(r"VmHWM:\s+(\d+) kB", open(f"/proc/{process.pid}/status").read()).group(1)) * 1024
        print(f"serve peak RSS: {peak / 2**30:.2f} GiB")
        assert peak < SERVE_MEMORY_BOUND, f"{peak / 2**30:.2f} GiB"
    finally:
        assert stopped_within(process, 5)
    assert "Traceback" not in process.stderr.read()

    # Stopped in the middle of a translation of minutes: the client is answered 503, the command says it stopped
    # and exits 0. Review rerun: a traceback of the cancelled request, then "terminate called without an active
    # exception" and exit 134, the process aborting while torch computed in the translation's thread.
    script = tmp_path / "slow.py"
    script.write_text(SLOW_TRANSLATION)
    for slow, said in (("layers", ""), ("sleep", "work in progress did not stop in time")):
        process, url = start_server([script, slow, "serve", pix2pix], tmp_path)
        answer = []
        client = threading.Thread(target=lambda answer=answer: answer.append(post(normal)), daemon=True)
        client.start()
        time.sleep(1.5)  # the translation has begun: it would take minutes
        assert stopped_within(process, 5)
        out, err = process.communicate()
        assert process.returncode == 0 and out.splitlines()[-1] == "ganforge: server stopped", (out, err)
        assert (err.startswith(f"ganforge: {said}") and len(err.splitlines()) == 1) if said else err == "", err
        client.join(timeout=10)
        assert answer and answer[0][:2] == (503, b"the server is stopping")


@pytest.mark.parametrize(
    ("task", "given", "batch_size"),
    [
        ("pix2pix", {"image_size": 64}, 16),  # the size the translators' batches were measured at
        ("pix2pix", {"image_size": 128}, 4),
        ("pix2pix", {}, 1),  # 256 px, the default crop: the papers' batch (docs/translation.md)
        ("cyclegan", {"image_size": 64}, 4),
        ("cyclegan", {"image_size": 128}, 1),
        ("cyclegan", {}, 1),
        ("pix2pix", {"batch_size": 8}, 8),  # what the user gives is kept
    ],
)
def test_a_translators_batch_follows_the_crops_pixels(task, given, batch_size):
    """16 at 64 px made 35 updates in 8 minutes at 256 px on 2 CPU cores, and a blur: the batch scales with the
    crop's pixels, down to the papers' 1 at 256 px."""
    assert TrainConfig(task=task, data="facades", **given).resolved().batch_size == batch_size


@pytest.mark.parametrize(
    ("task", "given", "width"),
    [
        ("pix2pix", {"image_size": 64}, 64),  # the papers' width below 256 px
        ("pix2pix", {"image_size": 128}, 64),
        ("pix2pix", {}, 32),  # 256 px, the default crop: half (docs/translation.md)
        ("pix2pix", {"image_size": 512}, 32),
        ("cyclegan", {}, 32),
        ("pix2pix", {"width": 64}, 64),  # what the user gives is kept: the papers' networks at 256 px
    ],
)
def test_a_translators_width_halves_from_256_px(task, given, width):
    """At 256 px and batch 1 the papers' width 64 trained fewer images per second than pix2pix's reference code
    on an AVX2 core; width 32 trained 3.9x them and scored better: the crop decides the width too."""
    assert TrainConfig(task=task, data="facades", **given).resolved().width == width
