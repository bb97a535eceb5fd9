"""Registration example family: one training step of ``examples/registration_mnist.py`` per warp backend.

The step is the example's: the flow U-Net reads moving + fixed (N, 2, 28, 28), the warp moves the
moving digit by the predicted flow, MSE + flow smoothness, backward, Adam. Only the warp differs:

* ours: ``fastaug.nn.Warp`` (the example's default backend);
* ``grid_sample`` with the base grid built once (the example's ``--backend grid_sample``);
* ``grid_sample`` with the grid rebuilt from a meshgrid every step (``fastaug.reference.warp``; what
  the example's grid_sample backend did before 2026-12).

Identical weights (same seed) and the same random 28x28 batch for every backend, interleaved
rounds. Target (docs: issue table): our step faster than the precomputed grid_sample step, i.e. a
speed-up >= 1. The warp alone at this shape is bench_warp's N=64 1x28x28 row ("grad: flow").

The warp is about 1 % of this step, below the spread of 5 rounds on a shared machine, so this row
reads "level" either way; ``python -m benchmarks.experiments.registration_paired`` answers the
question with a paired test over many rounds (median ratio, its bootstrap interval, a Wilcoxon
p-value).
"""
import importlib.util
import os

import torch

from fastaug import reference

from .harness import compare

_EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "registration_mnist.py")
PRECOMPUTED = "same step, grid_sample with the base grid built once (--backend grid_sample)"
MESHGRID = "same step, grid_sample with a meshgrid grid per step (fastaug.reference.warp)"


def _example():
    spec = importlib.util.spec_from_file_location("registration_mnist", _EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _ReferenceWarp(torch.nn.Module):
    def forward(self, x, flow):
        return reference.warp(x, flow)


def _step(example, backend, moving, fixed, width, reference_warp=False):
    torch.manual_seed(0)
    model = example.Registration(backend, width).to(moving.device)
    if reference_warp:
        model.warp = _ReferenceWarp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        warped, flow = model(moving, fixed)
        loss = example.registration_loss(warped, fixed, flow, 0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def run(device, quick=False):
    example = _example()
    t = 0.2 if quick else (3.0 if device == "cpu" else 1.0)
    width = 4 if quick else 16
    rows = []
    for N in ([4] if quick else [32, 64]):
        g = torch.Generator().manual_seed(0)
        moving, fixed = (torch.rand(N, 1, 28, 28, generator=g).to(device) for _ in range(2))
        rows += compare("registration", f"registration step, fastaug.nn.Warp (U-Net width {width})",
                        f"N={N} 1x28x28 float32", device, _step(example, "fastaug", moving, fixed, width),
                        {PRECOMPUTED: _step(example, "grid_sample", moving, fixed, width),
                         MESHGRID: _step(example, "grid_sample", moving, fixed, width, reference_warp=True)},
                        target={PRECOMPUTED: 1.0}, min_run_time=t, rounds=1 if quick else 5)
    return rows
