"""LastLayerInfluence.influence_aug runs the model in eval mode (BatchNorm statistics neither used from the batch
nor updated), restores the caller's mode, and moves the images to the layer's device."""
import pytest
import torch
from torch import nn

from fastaug.influence import LastLayerInfluence


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.body(x))


def _fitted(device="cpu"):
    torch.manual_seed(0)
    net = BNNet().double().to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20, 1, 6, 6, generator=g, dtype=torch.float64)
    y = torch.arange(20) % 3
    net.train()
    with torch.no_grad():
        net(x.to(device) * 3 + 1)  # running statistics away from the batch's own
    for p in net.parameters():
        p.requires_grad_(False)
    inf = LastLayerInfluence(net, damping=0.1, progress=False).fit([(x, y)])
    inf.s_val([(x[:8], y[:8])])
    return net, inf, x, y


def test_influence_aug_uses_eval_mode_keeps_bn_statistics_and_restores_the_mode():
    net, inf, x, y = _fitted()
    net.train()
    stats = [t.clone() for t in (net.body[1].running_mean, net.body[1].running_var)]
    x_aug = (x + 0.1).requires_grad_()
    out = inf.influence_aug(x, x_aug, y)
    assert net.training
    assert torch.equal(net.body[1].running_mean, stats[0]) and torch.equal(net.body[1].running_var, stats[1])
    net.eval()
    with torch.no_grad():
        h, h_aug = net.body(x), net.body(x_aug)
        ref = inf.influence_aug_features(h, net.fc(h), h_aug, net.fc(h_aug), y)
    assert torch.allclose(out.detach(), ref, rtol=1e-12, atol=1e-14)
    out.sum().backward()
    assert x_aug.grad is not None and torch.isfinite(x_aug.grad).all()


@pytest.mark.cuda
def test_influence_aug_moves_images_to_the_layers_device():
    net, inf, x, y = _fitted("cuda")
    out = inf.influence_aug(x, x + 0.1, y)  # CPU images, CUDA model
    assert out.device.type == "cuda" and torch.isfinite(out).all()
