import pytest
import torch
from torch import nn

from conftest import gan_models
from ganforge.models import MODELS, DCGANGenerator, MLPDiscriminator, MLPGenerator, build_discriminator, build_generator
from ganforge.models.dcgan import base_resolution

SHAPES = [(1, 28), (3, 32), (3, 64), (1, 64)]


def linear_sizes(module: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


def test_classic_mlp_is_exactly_the_seed_network():
    generator, discriminator = MLPGenerator(), MLPDiscriminator()
    assert linear_sizes(generator) == [(100, 128), (128, 784)]
    assert [type(m) for m in generator.net] == [nn.Linear, nn.ReLU, nn.Linear, nn.Sigmoid]
    assert linear_sizes(discriminator) == [(784, 128), (128, 1)]
    assert [type(m) for m in discriminator.net] == [nn.Linear, nn.ReLU, nn.Linear]  # logit: no sigmoid
    images = generator(torch.randn(5, 100))
    assert images.shape == (5, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize("model", gan_models())
@pytest.mark.parametrize("channels,image_size", SHAPES)
def test_every_model_maps_noise_to_images_to_logits(model, channels, image_size):
    generator = build_generator(model, dict(z_dim=16, width=8, channels=channels, image_size=image_size))
    discriminator = build_discriminator(model, dict(width=8, channels=channels, image_size=image_size))
    images = generator(torch.randn(3, 16))
    assert images.shape == (3, channels, image_size, image_size)
    low, high = generator.output_range
    assert images.min() >= low and images.max() <= high
    logits = discriminator(images)
    assert logits.shape == (3,)
    assert logits.dtype == torch.float32


@pytest.mark.parametrize("size,expected", [(28, (7, 2)), (32, (4, 3)), (64, (4, 4)), (48, (6, 3))])
def test_dcgan_starts_from_a_small_base_resolution(size, expected):
    assert base_resolution(size) == expected


@pytest.mark.parametrize("size", [7, 27, 5])
def test_dcgan_rejects_sizes_it_cannot_reach(size):
    with pytest.raises(ValueError, match="image size"):
        base_resolution(size)


def test_dcgan_mnist_generator_works_at_native_28_pixels():
    generator = DCGANGenerator()
    first, last = generator.net[0], [m for m in generator.net if isinstance(m, nn.ConvTranspose2d)][-1]
    assert first.kernel_size == (7, 7) and first.out_channels == 128
    assert last.out_channels == 1
    assert isinstance(generator.net[-1], nn.Tanh)


def test_dcgan_weights_follow_the_paper_initialisation():
    torch.manual_seed(0)
    generator = DCGANGenerator(width=64, channels=3, image_size=64)
    convs = torch.cat([m.weight.flatten() for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)])
    scales = torch.cat([m.weight for m in generator.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(convs.std().item() - 0.02) < 0.001 and abs(convs.mean().item()) < 0.001
    assert abs(scales.mean().item() - 1.0) < 0.01


def test_models_have_their_published_recipes():
    assert MODELS["mlp"].lr == 1e-3 and MODELS["mlp"].betas == (0.9, 0.999)
    assert MODELS["dcgan"].lr == 2e-4 and MODELS["dcgan"].betas == (0.5, 0.999)


@pytest.mark.parametrize("model", gan_models())
def test_every_model_has_a_conditional_form(model):
    generator = build_generator(model, dict(z_dim=16, width=8, channels=1, image_size=28, num_classes=10))
    discriminator = build_discriminator(model, dict(width=8, channels=1, image_size=28, num_classes=10))
    assert generator.num_classes == discriminator.num_classes == 10
    for module in generator.modules():  # conditional BatchNorm starts class-blind (scale 1, shift 0)
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight)
    z = torch.randn(4, 16).repeat(2, 1)  # the same noise twice ...
    labels = torch.tensor([0, 1, 2, 3, 9, 8, 7, 6])  # ... with other classes
    generator.eval()
    images = generator(z, labels)
    assert images.shape == (8, 1, 28, 28)
    assert not torch.allclose(images[:4], images[4:])  # the class changes the image
    logits = discriminator(images, labels)
    assert logits.shape == (8,)
    assert not torch.allclose(discriminator(images, labels), discriminator(images, labels.flip(0)))
    with pytest.raises(ValueError, match="conditional"):
        generator(z)
    with pytest.raises(ValueError, match="unconditional"):
        build_generator(model, dict(z_dim=16, width=8, channels=1, image_size=28))(z, labels)


def test_resnet_discriminator_is_spectrally_normalised():
    """After some power iterations every weight's largest singular value is ~1 (Miyato et al. 2018)."""
    torch.manual_seed(0)
    discriminator = build_discriminator("resnet", dict(width=16, channels=3, image_size=32, num_classes=10))
    images, labels = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    normalised = [m for m in discriminator.modules() if hasattr(m, "parametrizations")]
    with torch.no_grad():
        for module in normalised:  # whatever the raw weights' scale, the normalised ones have norm 1
            module.parametrizations.weight.original.mul_(5.0)
    for _ in range(30):  # each training-mode forward runs one power iteration
        discriminator(images, labels)
    discriminator.eval()
    assert len(normalised) >= 8
    for module in normalised:
        weight = module.weight.detach().flatten(1)  # the normalised weight
        sigma = torch.linalg.matrix_norm(weight, ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05), type(module).__name__


def test_resnet_recipe_and_shapes():
    assert MODELS["resnet"].betas == (0.0, 0.9) and MODELS["resnet"].lr == 2e-4
    generator = build_generator("resnet", dict(z_dim=8, width=8, channels=1, image_size=28, num_classes=0))
    assert generator.base == 7 and len(generator.blocks) == 2


@pytest.mark.parametrize("model", gan_models())
def test_a_conditional_discriminator_with_a_classifier_reads_the_class_beside_its_logit(model):
    """``classify=True``: (the same logits, class logits (B, K)); only a conditional D built with the classifier has
    one, and asking another D to classify is refused."""
    torch.manual_seed(0)
    shape = dict(width=8, channels=1, image_size=28, num_classes=3)
    discriminator = build_discriminator(model, dict(shape, classifier=True)).eval()
    images, labels = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 0])
    logits, classes = discriminator(images, labels, classify=True)
    assert logits.shape == (4,) and classes.shape == (4, 3)
    assert torch.equal(logits, discriminator(images, labels))
    assert build_discriminator(model, dict(shape, num_classes=0, classifier=True)).classifier is None
    plain = build_discriminator(model, shape)
    assert plain.classifier is None
    with pytest.raises(ValueError, match="no auxiliary classifier"):
        plain(images, labels, classify=True)
