"""Classifiers: shapes, features -> fc, last-layer lookup, normalisation inside, bad input."""
import pytest
import torch
import torch.nn.functional as F

from fastaug.influence import find_last_linear
from fastaug.models import MODELS, build_model

SHAPES = {"allconv": (1, 28, 28), "lenet": (1, 28, 28), "resnet20": (3, 32, 32), "resnet56": (3, 32, 32),
          "wrn28_10": (3, 32, 32)}
FEATURES = {"allconv": 128, "lenet": 84, "resnet20": 64, "resnet56": 64, "wrn28_10": 640}


@pytest.mark.parametrize("name", MODELS)
def test_forward_shapes_and_last_layer(name):
    torch.manual_seed(0)
    c = SHAPES[name][0]
    m = build_model(name, 7, c, mean=(0.3,) * c, std=(0.2,) * c).eval()
    x = torch.rand(2, *SHAPES[name])
    with torch.no_grad():
        h, z = m.features(x), m(x)
    assert h.shape == (2, FEATURES[name]) and z.shape == (2, 7)
    assert find_last_linear(m) is m.fc  # what fastaug.influence's last-layer lookup finds
    torch.testing.assert_close(z, F.linear(h, m.fc.weight, m.fc.bias))


def test_normalisation_is_inside_the_model():
    torch.manual_seed(0)
    a = build_model("allconv", 10, 1, mean=(0.25,), std=(0.5,)).eval()
    b = build_model("allconv", 10, 1).eval()  # mean 0.5, std 0.5
    b.load_state_dict(a.state_dict())  # same weights; only the constants differ
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x + 0.25))  # (x - .25)/.5 == ((x + .25) - .5)/.5


def test_resnet_depths_and_errors():
    n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 0.26e6 < n_params(build_model("resnet20", 10, 3)) < 0.28e6  # He et al.: 0.27M
    assert 0.84e6 < n_params(build_model("resnet56", 10, 3)) < 0.86e6  # 0.85M
    assert 36.4e6 < n_params(build_model("wrn28_10", 10, 3)) < 36.6e6  # Zagoruyko & Komodakis: 36.5M
    with pytest.raises(ValueError, match="unknown model 'vgg'; choose one of allconv"):
        build_model("vgg", 10, 3)
    m = build_model("allconv", 10, 1)
    with pytest.raises(ValueError, match=r"expects \(N, 1, H, W\)"):
        m(torch.rand(2, 3, 28, 28))
    with pytest.raises(TypeError, match="float in"):
        m(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
