"""Wide-ResNet (Zagoruyko & Komodakis 2016): ``wrn28_10`` (depth 28, width 10), the AdvAA paper's CIFAR model.

Pre-activation basic blocks (BN-ReLU-conv), widths 16k, 32k, 64k over three stages of (depth-4)/6
blocks, 1x1 convolution shortcuts where the shape changes, optional dropout between the two
convolutions of a block (0 by default, as in the AutoAugment / AdvAA recipes).
"""
import torch.nn.functional as F
from torch import nn

from .base import Classifier

__all__ = ["WideResNet", "wrn28_10"]


class WideBlock(nn.Module):
    def __init__(self, cin, cout, stride, dropout):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x), inplace=False)
        y = self.conv1(o)
        y = F.relu(self.bn2(y), inplace=True)
        if self.dropout > 0:
            y = F.dropout(y, self.dropout, self.training)
        y = self.conv2(y)
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(Classifier):
    """WRN-depth-width; features (N, 64 * width)."""

    def __init__(self, depth=28, width=10, num_classes=10, in_channels=3, dropout=0.0, mean=None, std=None):
        super().__init__(in_channels, num_classes, mean, std)
        if (depth - 4) % 6:
            raise ValueError(f"a Wide-ResNet has depth 6n + 4 (16, 22, 28, 40), got {depth}")
        n = (depth - 4) // 6
        widths = (16, 16 * width, 32 * width, 64 * width)
        self.conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        blocks, cin = [], widths[0]
        for stage in range(3):
            for b in range(n):
                blocks.append(WideBlock(cin, widths[stage + 1], 2 if stage > 0 and b == 0 else 1, dropout))
                cin = widths[stage + 1]
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def body(self, x):
        x = F.relu(self.bn(self.blocks(self.conv(x))), inplace=True)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def wrn28_10(num_classes=10, in_channels=3, **kw):
    return WideResNet(28, 10, num_classes, in_channels, **kw)
