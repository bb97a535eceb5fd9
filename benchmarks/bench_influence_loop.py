"""Influence loop: one step of stage 4 against the stock composition a user would write today.

One step = E forward, dropout on tau, G forward, the learned transformation, the frozen classifier F on
x (no grad) and on x~, the influence objective mean I_aug, and its backward to E and G.

* ours: ``fastaug.transform`` and ``fastaug.influence_aug`` (closed form, analytic backward to F's
  features and logits);
* stock: the grid_sample-based transformation (replicate pad + ``avg_pool2d`` smoothing, eq. 20 flow,
  ``grid_sample``, ``einsum`` colour: ``bench_transform.stock_transform``) and per-sample last-layer
  gradients by autograd (``torch.autograd.grad`` of each sample's loss with respect to the last layer,
  ``create_graph=True`` so the step can backpropagate through them), I_aug = -s_val . (g~ - g);
* for information, the same with ``torch.func.vmap(grad)`` per-sample gradients.

E, G and F (allconv for 1x28x28, resnet20 for 3x32x32) are the same modules on both sides, so their
convolutions, which both sides pay, bound the ratio of the whole step (Amdahl); the rows "influence
objective" and "transformation" time the parts that differ. Target (docs/influence_loop.md): the step >= 3x the
per-sample autograd composition on CPU.
"""
import torch
import torch.nn.functional as F

import fastaug
from fastaug.influence import LastLayerInfluence
from fastaug.models import build_model
from fastaug.train.influence_loop.augmenter import Augmenter

from .bench_transform import stock_transform
from .harness import compare

TARGET = 3.0


def _setup(N, C, H, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_model("allconv" if C == 1 else "resnet20", 10, C).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    aug = Augmenter(C, H, H, appearance=C == 3).to(device)
    aug.generator.reset_head(0.02)  # a transformation away from the identity, as after stage 2
    x = torch.rand(N, C, H, H, generator=g).to(device)
    y = torch.randint(0, 10, (N,), generator=g).to(device)
    with torch.no_grad():
        h = model.features(x).double()
        logits = model.fc(model.features(x)).double()
    inf = LastLayerInfluence.from_features(h, logits, y, damping=0.01, progress=False)
    inf.model, inf.layer = model, model.fc
    inf.s_val(h=h[: N // 2], logits=logits[: N // 2], y=y[: N // 2])
    mask = aug.dropout_mask(N, g, device)
    u = torch.meshgrid((2 * torch.arange(H, device=device, dtype=x.dtype) + 1) / H - 1,
                       (2 * torch.arange(H, device=device, dtype=x.dtype) + 1) / H - 1, indexing="xy")
    return model, aug, inf, x, y, mask, u


def _per_sample_scores_loop(model, s, h, y):
    """s . grad_Theta l(z_i) for every sample, one autograd.grad per sample (create_graph: differentiable in h)."""
    W = model.fc.weight.detach().requires_grad_()
    b = model.fc.bias.detach().requires_grad_()
    z = h @ W.T + b
    D = h.shape[1]
    out = []
    for i in range(h.shape[0]):
        gW, gb = torch.autograd.grad(F.cross_entropy(z[i:i + 1], y[i:i + 1]), (W, b), create_graph=True)
        out.append((gW * s[:, :D]).sum() + (gb * s[:, D]).sum())
    return torch.stack(out)


def _per_sample_scores_vmap(model, s, h, y):
    """The same with torch.func: vmap over samples of grad of the per-sample loss."""
    from torch.func import grad, vmap

    def loss(W, b, hi, yi):
        return F.cross_entropy((hi @ W.T + b)[None], yi[None])

    gW, gb = vmap(grad(loss, argnums=(0, 1)), in_dims=(None, None, 0, 0))(model.fc.weight, model.fc.bias, h, y)
    D = h.shape[1]
    return (gW * s[:, :D]).sum((1, 2)) + (gb * s[:, D]).sum(1)


def _stock_i_aug(model, s, x, x_aug, y, scores):
    """-s . (g(z~) - g(z)) per sample with the given per-sample-gradient scores (F frozen, x without grad)."""
    with torch.no_grad():
        h = model.features(x)
    base = scores(model, s, h, y).detach()
    return -(scores(model, s, model.features(x_aug), y) - base)


def run(device, quick=False):
    sizes = [(128, 1, 28), (128, 3, 32)]
    if quick:
        sizes = [(8, 1, 28)]
    t = 0.2 if quick else 2.0
    rows = []
    for N, C, H in sizes:
        model, aug, inf, x, y, mask, u = _setup(N, C, H, device)
        s32 = inf.s_val_.float()
        k = aug.smooth
        params_of = lambda: aug.params(aug.encoder(x) * mask)  # noqa: E731

        def ours():
            out = aug.apply(x, params_of())
            inf.influence_aug(x, out, y).mean().backward()

        def stock(scores):
            def step():
                out = stock_transform(x, params_of(), u, k, aug.mode).clamp(0, 1)
                _stock_i_aug(model, s32, x, out, y, scores).mean().backward()
            return step

        size = f"N={N} {C}x{H}x{H} float32, F={'allconv' if C == 1 else 'resnet20'}"
        rows += compare("influence_loop", "stage-4 step (E, G, transform, frozen F, I_aug, backward)", size, device,
                        ours, {"grid_sample + per-sample autograd": stock(_per_sample_scores_loop),
                               "grid_sample + torch.func vmap(grad)": stock(_per_sample_scores_vmap)},
                        {"grid_sample + per-sample autograd": TARGET}, t,
                        note="E, G, F convolutions shared by both sides")
        # The parts that differ, on their own.
        with torch.no_grad():
            h = model.features(x)
            h_aug = model.features(aug.apply(x, params_of()))
        h_aug = h_aug.detach().requires_grad_()
        hd, zd = h.double(), model.fc(h).double()

        def ours_objective():
            ha = h_aug.double()
            inf.influence_aug_features(hd, zd, ha, model.fc(h_aug).double(), y).mean().backward()

        def loop_objective():
            base = _per_sample_scores_loop(model, s32, h, y).detach()
            (-(_per_sample_scores_loop(model, s32, h_aug, y) - base)).mean().backward()

        def vmap_objective():
            base = _per_sample_scores_vmap(model, s32, h, y).detach()
            (-(_per_sample_scores_vmap(model, s32, h_aug, y) - base)).mean().backward()

        rows += compare("influence_loop", "influence objective on features, fwd+bwd", size, device, ours_objective,
                        {"per-sample autograd": loop_objective, "torch.func vmap(grad)": vmap_objective}, None, t / 2)
        p = params_of().detach().requires_grad_()
        grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(device)
        rows += compare("influence_loop", "transformation fwd+bwd (param grads)", size, device,
                        lambda: fastaug.transform(x, p, smooth=k, mode=aug.mode).backward(grad),
                        {"pad+avg_pool2d+flow+grid_sample+einsum": lambda: stock_transform(x, p, u, k, aug.mode)
                         .backward(grad)}, None, t / 2)
    return rows
