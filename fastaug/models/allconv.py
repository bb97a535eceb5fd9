"""``allconv``: the paper's 4-layer all-convolutional classifier for MNIST-sized images.

The seeds (learning-to-augment-influential-data, section 5.1; Ratner et al. 2017's MNIST end model)
name a "4-layer all-convolutional network" without its widths. fastaug's: four 3x3 convolutions
(32, 64 with stride 2, 64, 128 with stride 2), each followed by BatchNorm and ReLU -- pooling done by
strided convolutions, as in Springenberg et al.'s all-convolutional nets -- then global average
pooling to a 128-d feature vector and the linear classifier ``fc``.
"""
from torch import nn

from .base import Classifier

__all__ = ["AllConv"]


def _conv_bn(cin, cout, stride):
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class AllConv(Classifier):
    """4 conv layers -> global average pool -> fc. Input (N, C, H, W) in [0, 1]; features (N, 128)."""

    def __init__(self, num_classes=10, in_channels=1, widths=(32, 64, 64, 128), mean=None, std=None):
        super().__init__(in_channels, num_classes, mean, std)
        w = tuple(widths)
        if len(w) != 4:
            raise ValueError(f"allconv has 4 layers: widths needs 4 values, got {w}")
        self.net = nn.Sequential(*_conv_bn(in_channels, w[0], 1), *_conv_bn(w[0], w[1], 2),
                                 *_conv_bn(w[1], w[2], 1), *_conv_bn(w[2], w[3], 2),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(w[3], num_classes)

    def body(self, x):
        return self.net(x)
