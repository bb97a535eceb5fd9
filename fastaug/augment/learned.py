"""The learned transformation model of the influence-augmentation paper (appendix A): encoder E,
generator G, discriminator D.

``E`` maps an image to a code ``tau`` (128-d, tanh), ``G`` maps ``tau`` to the raw per-pixel parameter
map of :func:`fastaug.transform` (18 channels for RGB, 8 for grey: s_w 4, s_b 2, c_w C*C, c_b C), and
``D`` scores images for the GAN that pretrains ``G``. :class:`LearnedAugment` chains them:
``x -> transform(x, G(dropout(E(x))))``, one differentiable module for a training step.

Sizes (appendix A and the rule for other sizes)
------------------------------------------------
Every network is a stack of 4x4 convolutions: one stride-1 convolution to 16 channels, then ``L``
stride-2 stages (padding 1, so each halves the size, rounding down) doubling the width each time
(16 * 2**l channels after stage l, capped at 256). ``L`` is the smallest number of stages that brings
the larger side down to at most 7 pixels, ``ceil(max(H, W) / 2**L) <= 7``:

* 28x28 (MNIST, A.1): L = 2, widths 16 -> 32 -> 64, a 7x7x64 = 3136 code map;
* 32x32 (CIFAR-10, A.2): L = 3, widths 16 -> 32 -> 64 -> 128, a 4x4x128 = 2048 code map;
* 64x64: L = 4 (4x4x256); 224x224: L = 5 (7x7x256).

``E`` flattens its last map into a linear layer to ``tau_dim`` (tanh). ``G`` mirrors it: a linear layer
to a ``(width_L, ceil(H / 2**L), ceil(W / 2**L))`` map, ``L`` 4x4 stride-2 transposed convolutions
(ReLU) back to 16 channels, and a final 4x4 stride-1 layer to the 18 or 8 parameter channels; its
output is cropped to ``H x W`` when a side is not a multiple of ``2**L``. The final stride-1 layer is
written as a 'same'-padded convolution: a stride-1 transposed convolution *is* a convolution (with a
flipped kernel), and the 'same' form keeps 28x28 at 28x28, which the appendix's padding-free
transposed convolution could not. ``D`` is ``E``'s convolution stack with LeakyReLU(0.2) and a
linear layer to one score. (The appendix lists E's first CIFAR layer as 1 -> 16 channels and D's
CIFAR input as 28x28x1; both are typos for the image's own channels and size, used here.)

Initialisation: G's last layer has zero bias and weights drawn with standard deviation
``init_scale`` (1e-3 by default), so a fresh G outputs parameter maps of order 1e-3: a transformation
within about 1e-3 of the identity, yet with a gradient for every layer.
"""
import math
import warnings

import torch
import torch.nn as nn

from ..ops.transform import num_params, transform

# Appendix A's 4x4 'same' convolutions: PyTorch warns that even kernels pad asymmetrically through a
# copy, on every call. That is the intended layer, so the warning is noise to users of E and G.
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths", category=UserWarning)

MAX_WIDTH = 256


def num_stages(height, width):
    """Number of stride-2 stages L: the smallest with ceil(max(H, W) / 2**L) <= 7 (at least 1)."""
    side, stages = max(height, width), 1
    while math.ceil(side / 2 ** stages) > 7:
        stages += 1
    return stages


def stage_widths(stages):
    """Channels after the stride-1 layer and after each stride-2 stage: 16, 32, 64, ... (capped at 256)."""
    return [min(16 * 2 ** l, MAX_WIDTH) for l in range(stages + 1)]


def _check_size(channels, height, width):
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if height < 2 or width < 2:
        raise ValueError(f"image size must be at least 2x2, got {height}x{width}")


def _conv_stack(channels, stages, activation):
    widths = stage_widths(stages)
    layers = [nn.Conv2d(channels, widths[0], 4, stride=1, padding="same"), activation()]
    for l in range(1, stages + 1):
        layers += [nn.Conv2d(widths[l - 1], widths[l], 4, stride=2, padding=1), activation()]
    return nn.Sequential(*layers)


def _stack_output_size(height, width, stages):
    for _ in range(stages):
        height, width = height // 2, width // 2
    if height < 1 or width < 1:
        raise ValueError("image too small for the number of stages")
    return height, width


class Encoder(nn.Module):
    """E: image (N, C, H, W) -> tau (N, tau_dim) in (-1, 1) (appendix A: convolutions, linear, tanh)."""

    def __init__(self, channels, height, width=None, tau_dim=128, stages=None):
        super().__init__()
        width = height if width is None else width
        _check_size(channels, height, width)
        self.channels, self.height, self.width = channels, height, width
        self.stages = num_stages(height, width) if stages is None else stages
        self.features = _conv_stack(channels, self.stages, nn.ReLU)
        h, w = _stack_output_size(height, width, self.stages)
        self.fc = nn.Linear(stage_widths(self.stages)[-1] * h * w, tau_dim)

    def forward(self, x):
        """x: (N, C, H, W) -> tau: (N, tau_dim)."""
        return torch.tanh(self.fc(self.features(x).flatten(1)))


class Generator(nn.Module):
    """G: tau (N, tau_dim) -> raw parameter map (N, 18 or 8, H, W) for :func:`fastaug.transform`."""

    def __init__(self, channels, height, width=None, tau_dim=128, stages=None, init_scale=1e-3):
        super().__init__()
        width = height if width is None else width
        _check_size(channels, height, width)
        self.channels, self.height, self.width, self.tau_dim = channels, height, width, tau_dim
        self.stages = num_stages(height, width) if stages is None else stages
        widths = stage_widths(self.stages)
        self.base = (math.ceil(height / 2 ** self.stages), math.ceil(width / 2 ** self.stages))
        self.fc = nn.Linear(tau_dim, widths[-1] * self.base[0] * self.base[1])
        layers = []
        for l in range(self.stages, 0, -1):
            layers += [nn.ConvTranspose2d(widths[l], widths[l - 1], 4, stride=2, padding=1), nn.ReLU()]
        self.upsample = nn.Sequential(*layers)
        # The final 4x4 stride-1 layer (see the module docstring), initialised near the identity.
        self.head = nn.Conv2d(widths[0], num_params(channels), 4, stride=1, padding="same")
        self.reset_head(init_scale)

    @property
    def num_params(self):
        return num_params(self.channels)

    def reset_head(self, init_scale=1e-3):
        """Re-initialise the last layer: zero bias, weights ~ N(0, init_scale^2) (near-identity G)."""
        with torch.no_grad():
            self.head.weight.normal_(0.0, init_scale)
            self.head.bias.zero_()

    def forward(self, tau):
        """tau: (N, tau_dim) -> params: (N, 6 + C*C + C, H, W)."""
        h = self.fc(tau).view(tau.shape[0], -1, *self.base)
        out = self.head(self.upsample(h))
        return out[:, :, : self.height, : self.width]


class Discriminator(nn.Module):
    """D: image (N, C, H, W) -> score (N, 1) (appendix A: convolutions with LeakyReLU 0.2, linear)."""

    def __init__(self, channels, height, width=None, stages=None):
        super().__init__()
        width = height if width is None else width
        _check_size(channels, height, width)
        self.stages = num_stages(height, width) if stages is None else stages
        self.features = _conv_stack(channels, self.stages, lambda: nn.LeakyReLU(0.2))
        h, w = _stack_output_size(height, width, self.stages)
        self.fc = nn.Linear(stage_widths(self.stages)[-1] * h * w, 1)

    def forward(self, x):
        """x: (N, C, H, W) -> (N, 1) unbounded score (use with a logits loss, WGAN-GP or RaGAN)."""
        return self.fc(self.features(x).flatten(1))


class LearnedAugment(nn.Module):
    """x -> fastaug.transform(x, G(dropout(E(x)))): the paper's learned augmentation as one module.

    Args:
        channels: 3 (RGB) or 1 (grey).
        height, width: image size (width defaults to height); see the module docstring for sizes.
        tau_dim: size of the code tau (128 in the paper).
        dropout: dropout probability on tau while training (0.5 in the paper's influence stage).
        smooth, mode, padding_mode: passed to :func:`fastaug.transform`.
        stages: override the number of stride-2 stages of E and G.
        init_scale: standard deviation of G's last-layer weights (near-identity start).

    ``forward(x, tau=None, return_params=False)``: x (N, C, H, W) float. With ``tau`` given,
    E is skipped (e.g. to interpolate codes); dropout applies in training mode either way.
    Returns the augmented batch (N, C, H, W), or ``(augmented, params)``.
    """

    def __init__(self, channels, height, width=None, tau_dim=128, dropout=0.5, smooth=4, mode="parallel",
                 padding_mode="zeros", stages=None, init_scale=1e-3):
        super().__init__()
        width = height if width is None else width
        self.encoder = Encoder(channels, height, width, tau_dim, stages)
        self.generator = Generator(channels, height, width, tau_dim, stages, init_scale)
        self.dropout = nn.Dropout(dropout)
        self.channels, self.height, self.width = channels, height, width
        self.smooth, self.mode, self.padding_mode = smooth, mode, padding_mode

    def params(self, x=None, tau=None):
        """Raw parameter map G(dropout(tau)) with tau = E(x) unless given."""
        if tau is None:
            if x is None:
                raise ValueError("params() needs x or tau")
            tau = self.encoder(x)
        return self.generator(self.dropout(tau))

    def forward(self, x, tau=None, return_params=False):
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.channels, self.height, self.width):
            raise ValueError(f"x must have shape (N, {self.channels}, {self.height}, {self.width}), "
                             f"got {tuple(x.shape)}")
        params = self.params(x, tau).to(x.dtype)
        out = transform(x, params, smooth=self.smooth, mode=self.mode, padding_mode=self.padding_mode)
        return (out, params) if return_params else out
