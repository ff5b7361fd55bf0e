"""Image-to-image translators: pix2pix's U-Net, CycleGAN's ResNet-block generator and the PatchGAN discriminator.

Isola et al. 2017 (pix2pix) and Zhu et al. 2017 (CycleGAN), as in
junyanz/pytorch-CycleGAN-and-pix2pix's ``networks.py``, with the depth and the
discriminator's receptive field following the image size. Both generators are
fully convolutional: they translate any image whose sides are a multiple of
``stride`` (``translation.translate_image`` pads to one and crops back).
Generators map [-1, 1] images to [-1, 1] images; the discriminator returns
a map of patch logits, nothing else.

Norms: ``instance`` (the default) normalises each image by its own statistics
in training and in eval mode alike, so ``translate`` gives exactly the
training grid's output; ``batch`` is pix2pix's original, and in eval mode it
uses running statistics, which differ from the batch statistics the network
was trained with. Dropout (pix2pix's U-Net) is active in training only. A
convolution followed by a norm has no bias: the norm subtracts it again, so in
the reference code it is a parameter with no gradient but rounding noise,
which Adam turns into steps of the full learning rate.
"""

import math

import torch
from torch import nn

from ganforge.models.dcgan import init_dcgan_weights

MAX_UNET_DEPTH = 8  # pix2pix's unet_256: 256 px down to a 1x1 bottleneck
NORMS = ("instance", "batch")
MIN_IMAGE_SIZE = 8  # below it the ResNet blocks and the PatchGAN's last layers see maps of 1 pixel


def check_image_size(image_size: int) -> None:
    """ValueError unless both translators and the PatchGAN train on ``image_size`` crops: a multiple of 4 (two
    halvings there and back, so the output has the input's size) and at least 8 (a 4-pixel crop leaves the
    discriminator's instance norm, and the ResNet blocks' reflection padding, a single pixel)."""
    if image_size % 4 or image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image-to-image models train on crops a multiple of 4 pixels wide, at least {MIN_IMAGE_SIZE}")


def norm_layer(norm: str, channels: int) -> nn.Module:
    """InstanceNorm without learnt affine or running statistics (CycleGAN's), or BatchNorm."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {norm!r}; choose from {', '.join(NORMS)}")


def init_weights(module: nn.Module) -> None:
    """pix2pix's and CycleGAN's initialisation (their ``init_type='normal'``): DCGAN's, with zero conv biases."""
    init_dcgan_weights(module)
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.bias is not None:
        nn.init.zeros_(module.bias)


def unet_depth(image_size: int) -> int:
    """Halvings of the U-Net: as many as ``image_size`` allows exactly (at most 8, down to 1 pixel)."""
    depth = 0
    while depth < MAX_UNET_DEPTH and image_size % 2 ** (depth + 1) == 0 and image_size >> (depth + 1) >= 1:
        depth += 1
    if depth < 2:
        raise ValueError(f"the U-Net needs an image size divisible by 4, got {image_size}")
    return depth


def patch_layers(image_size: int) -> int:
    """Strided layers of the PatchGAN: 3 at 256 px (70x70 patches), 2 at 128 (34x34), 1 at 64 and below (16x16).

    The patch stays about a quarter of the image's side, as pix2pix's 70 of 256.
    """
    return max(1, min(3, round(math.log2(max(image_size, 1))) - 5))


class UNetGenerator(nn.Module):
    """pix2pix's generator: an encoder-decoder whose mirrored layers are joined by skip connections."""

    def __init__(
        self,
        in_channels: int = 3,  # channels of the input image
        out_channels: int = 3,  # channels of the translated image
        width: int = 64,  # channels of the first layer (pix2pix's ngf); deeper layers double it, up to 8x
        image_size: int = 256,  # training crop size: sets the depth (``unet_depth``)
        norm: str = "instance",  # 'instance' or 'batch'
        dropout: bool = True,  # dropout 0.5 in the three innermost decoder layers of 8x width, as pix2pix
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        depth = unet_depth(image_size)
        self.stride = 2**depth  # the sides of an input must be a multiple of this
        self.output_range = (-1.0, 1.0)
        widths = [width * min(2**level, 8) for level in range(depth)]  # each encoder level's output channels
        self.down = nn.ModuleList()
        for level in range(depth):
            layers = [] if level == 0 else [nn.LeakyReLU(0.2, inplace=True)]
            channels_in = in_channels if level == 0 else widths[level - 1]
            normalised = 0 < level < depth - 1  # neither the outermost nor the innermost layer is
            layers.append(nn.Conv2d(channels_in, widths[level], 4, 2, 1, bias=not normalised))
            if normalised:
                layers.append(norm_layer(norm, widths[level]))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for level in range(depth):
            inner = level == depth - 1
            channels_in = widths[level] * (1 if inner else 2)  # the skip doubles all but the innermost
            if level == 0:
                layers = [nn.ReLU(True), nn.ConvTranspose2d(channels_in, out_channels, 4, 2, 1), nn.Tanh()]
            else:
                layers = [
                    nn.ReLU(True),
                    nn.ConvTranspose2d(channels_in, widths[level - 1], 4, 2, 1, bias=False),
                    norm_layer(norm, widths[level - 1]),
                ]
                # pix2pix drops out in the 8x-width blocks between the innermost and the four outermost.
                if dropout and not inner and level >= 4:
                    layers.append(nn.Dropout(0.5))
            self.up.append(nn.Sequential(*layers))
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)  # (B, widths[level], H / 2^(level+1), W / 2^(level+1))
        x = self.up[-1](skips[-1])
        for level in range(len(self.up) - 2, -1, -1):
            x = self.up[level](torch.cat([skips[level], x], dim=1))
        return x  # (B, out_channels, H, W) in [-1, 1]


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(x))) with reflection padding, as CycleGAN's ResnetBlock."""

    def __init__(self, channels: int, norm: str, dropout: bool):
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False), norm_layer(norm, channels)]
        layers += [nn.ReLU(True)] + ([nn.Dropout(0.5)] if dropout else [])
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False), norm_layer(norm, channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetTranslator(nn.Module):
    """CycleGAN's generator: two stride-2 convolutions, residual blocks at 1/4 resolution, two transposed ones."""

    def __init__(
        self,
        in_channels: int = 3,  # channels of the input image
        out_channels: int = 3,  # channels of the translated image
        width: int = 64,  # channels of the first layer (ngf); 4x in the residual blocks
        image_size: int = 256,  # training crop size: 9 blocks from 256 px, 6 below (CycleGAN's choice)
        norm: str = "instance",  # 'instance' or 'batch'
        dropout: bool = False,  # dropout 0.5 inside each residual block
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride = 4
        self.output_range = (-1.0, 1.0)
        bias = False  # every convolution but the last is normalised, which takes away any bias
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7, bias=bias), norm_layer(norm, width)]
        layers.append(nn.ReLU(True))
        for factor in (1, 2):
            layers += [nn.Conv2d(width * factor, width * factor * 2, 3, 2, 1, bias=bias)]
            layers += [norm_layer(norm, width * factor * 2), nn.ReLU(True)]
        layers += [ResidualBlock(width * 4, norm, dropout) for _ in range(9 if image_size >= 256 else 6)]
        for factor in (4, 2):
            layers += [nn.ConvTranspose2d(width * factor, width * factor // 2, 3, 2, 1, output_padding=1, bias=bias)]
            layers += [norm_layer(norm, width * factor // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, out_channels, H, W) in [-1, 1]


class PatchDiscriminator(nn.Module):
    """PatchGAN: a logit for each overlapping patch of the image (70x70 at 256 px), not one for the whole image.

    For pix2pix it sees the input and the output side by side in channels (``in_channels`` = both).
    """

    def __init__(
        self,
        in_channels: int = 6,  # channels it sees: input + output for pix2pix, one domain's for CycleGAN
        width: int = 64,  # channels of the first layer (ndf); doubled per layer, up to 8x
        image_size: int = 256,  # training crop size: sets the strided layers (``patch_layers``)
        norm: str = "instance",  # 'instance' or 'batch'
    ):
        super().__init__()
        bias = False  # a normalised convolution's bias would be subtracted again
        layers = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        channels = width
        strided = patch_layers(image_size)
        for layer in range(1, strided + 1):
            out = width * min(2**layer, 8)
            stride = 2 if layer < strided else 1  # the last one keeps the resolution, as pix2pix's
            layers += [nn.Conv2d(channels, out, 4, stride, 1, bias=bias), norm_layer(norm, out)]
            layers.append(nn.LeakyReLU(0.2, True))
            channels = out
        layers.append(nn.Conv2d(channels, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)  # (B, 1, h, w) patch logits
