"""CIFAR ResNets (He et al. 2016, section 4.2): ``resnet20``, ``resnet56`` (6n + 2 layers, n = 3, 9).

Three stages of n basic blocks at 16, 32, 64 channels on 32x32 inputs; the shortcut across a
change of size is the paper's option A (stride-2 subsampling and zero-padded channels: no
parameters), as in the original CIFAR experiments; Kaiming-normal initialisation.
"""
import torch.nn.functional as F
from torch import nn

from .base import Classifier

__all__ = ["CifarResNet", "resnet20", "resnet56"]


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def shortcut(self, x):
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class CifarResNet(Classifier):
    """ResNet-(6n+2) for 32x32 images; features (N, 64)."""

    def __init__(self, depth=20, num_classes=10, in_channels=3, mean=None, std=None):
        super().__init__(in_channels, num_classes, mean, std)
        if (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n + 2 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for stage, cout in enumerate((16, 32, 64)):
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and b == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def body(self, x):
        x = self.blocks(F.relu(self.bn(self.conv(x)), inplace=True))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def resnet20(num_classes=10, in_channels=3, **kw):
    return CifarResNet(20, num_classes, in_channels, **kw)


def resnet56(num_classes=10, in_channels=3, **kw):
    return CifarResNet(56, num_classes, in_channels, **kw)
