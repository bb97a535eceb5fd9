"""The self-influence / training-loss histogram figure and its CLI subcommand's parser."""
import torch

from fastaug.cli import build_parser
from fastaug.viz import influence_histograms


def test_influence_histograms_writes_png(tmp_path):
    g = torch.Generator().manual_seed(0)
    self_inf = torch.distributions.Exponential(torch.tensor(3.0)).sample((500,))
    losses = torch.rand(500, generator=g) ** 4 * 3
    path = influence_histograms(tmp_path / "sub" / "hist.png", self_inf, losses.numpy(), title="test")
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_cli_parser():
    args = build_parser().parse_args(["influence-hist", "--out", "x.png", "--damping", "0.01"])
    assert args.out == "x.png" and args.damping == 0.01 and callable(args.func)
