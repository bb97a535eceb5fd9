"""The influence objective of stage 4 and the checks of what it predicts.

Sign convention (the one place the loop writes it; the influence conventions themselves are in
:mod:`fastaug.influence`):

* ``I_aug(z_i, z~_i) = -s_val^T (grad l(z~_i) - grad l(z_i))`` with ``s_val = H^-1 grad L_val``;
  replacing ``z_i`` by ``z~_i`` changes the validation loss by about ``+I_aug / N`` (the paper's eq. 15).
* The paper "maximises the influence"; what it wants is a lower validation loss, so the loop
  **minimises** ``mean_i I_aug(z_i, z~_i)``: a gradient step moves every ``x~_i`` in the direction
  in which the influence predicts the validation loss falls. Negative ``I_aug`` = a helpful
  augmentation; ``mean_influence`` in the metrics is this mean (it should fall during stage 4).

What the objective predicts is checked against retraining on the training set *plus* the
augmentation of every training point (the mixture stage 5 trains on, with ``--learned-prob 0.5``):
with ``L_mix = (L_orig + L_aug) / 2 = L_orig + eps (L_aug - L_orig)`` at ``eps = 1/2``, the
validation loss changes by ``dL/deps * eps = mean_i I_aug / 2`` to first order. ``predicted_val_loss``
is F's validation loss plus that; ``refit_val_loss`` is F's validation loss plus the change measured by
refitting the last layer to convergence on the originals plus the augmentations instead of on the
originals alone. The full check, retraining F end to end, is stage 5.
"""
import torch
import torch.nn.functional as F

from ..loop import optimizer_step

__all__ = ["influence_objective", "last_layer_theta", "refit_last_layer", "predicted_vs_refit"]


def influence_objective(influence, x, x_aug, y):
    """Mean ``I_aug`` of replacing ``(x_i, y_i)`` by ``(x_aug_i, y_i)``: the loss stage 4 minimises.

    Args:
        influence: a fitted :class:`fastaug.influence.LastLayerInfluence` with ``s_val`` cached; its
            model (frozen by the caller) is run in eval mode.
        x: (N, ...) the training inputs; no gradient flows to them.
        x_aug: (N, ...) their augmentations, differentiable (through the model's features and logits,
            with :func:`fastaug.influence_aug`'s analytic backward).
        y: (N,) int64 labels.

    Returns:
        A 0-d tensor: minimising it lowers the predicted validation loss.
    """
    return influence.influence_aug(x, x_aug, y).mean()


def last_layer_theta(fc):
    """The parameters of a last layer ``fc`` (``nn.Linear``) as one matrix: ``[W b]`` (C, D+1), or
    ``W`` (C, D) for a layer built with ``bias=False`` (the influence's convention, :mod:`fastaug.influence`)."""
    return fc.weight if fc.bias is None else torch.cat([fc.weight, fc.bias[:, None]], 1)


def _loss(theta, h, y):
    if theta.shape[1] == h.shape[1]:  # W only: a last layer without a bias
        return F.cross_entropy(h @ theta.T, y)
    return F.cross_entropy(h @ theta[:, :-1].T + theta[:, -1], y)


def refit_last_layer(theta0, h, y, damping, max_iter=200):
    """Minimise ``mean CE(h Theta) + damping/2 ||Theta||^2`` over the last layer ``Theta = [W b]``
    (C, D+1), or ``W`` (C, D) for a layer without a bias, from ``theta0`` with L-BFGS (strong Wolfe)
    in float64; returns the minimiser (the shape of ``theta0``)."""
    if theta0.shape[1] not in (h.shape[1], h.shape[1] + 1):
        raise ValueError(f"theta0 {tuple(theta0.shape)} is not a last layer for features of width {h.shape[1]} "
                         f"(expected (C, {h.shape[1]}) or (C, {h.shape[1] + 1}) with the bias column)")
    theta = theta0.detach().to(torch.float64).clone().requires_grad_()
    h, y = h.detach().to(torch.float64), y.detach()
    opt = torch.optim.LBFGS([theta], max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-14)
    optimizer_step(None, opt, closure=lambda: _loss(theta, h, y) + 0.5 * damping * theta.square().sum())
    return theta.detach()


@torch.no_grad()
def predicted_vs_refit(influence, h_aug, logits_aug, val_h, val_logits, val_y, theta):
    """Validation loss of F, predicted after adding the augmentation of every training point to the
    training set, and measured by refitting the last layer (see the module docstring).

    Args:
        influence: fitted, with ``s_val``; its cached training features ``h``, logits and labels are the
            originals ``z_i``.
        h_aug, logits_aug: (N, D), (N, C) features and logits of the augmented training points.
        val_h, val_logits, val_y: the validation split through F.
        theta: (C, D+1) F's last layer ``[W b]``, or (C, D) ``W`` for a layer without a bias
            (:func:`last_layer_theta`).

    Returns:
        dict with ``val_loss`` (F), ``mean_influence`` (mean I_aug), ``predicted_val_loss``
        (``val_loss + mean I_aug / 2``), ``refit_val_loss`` (``val_loss`` + the change measured by
        refitting the last layer on original and augmented features instead of the originals alone).
    """
    dt = torch.float64
    i_aug = influence.influence_aug_features(influence.h, influence.logits, h_aug.to(dt), logits_aug.to(dt),
                                             influence.y)
    val_loss = F.cross_entropy(val_logits.to(dt), val_y).item()
    with torch.enable_grad():
        orig = refit_last_layer(theta, influence.h, influence.y, influence.damping)
        aug = refit_last_layer(theta, torch.cat([influence.h, h_aug.to(dt)]), torch.cat([influence.y, influence.y]),
                               influence.damping)
    vh = val_h.to(dt)
    change = _loss(aug, vh, val_y).item() - _loss(orig, vh, val_y).item()
    mean = i_aug.mean().item()
    return {"val_loss": val_loss, "mean_influence": mean, "predicted_val_loss": val_loss + mean / 2,
            "refit_val_loss": val_loss + change}
