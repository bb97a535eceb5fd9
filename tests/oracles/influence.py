"""Readable references of the influence ops (docs/design.md K4), by autograd of the loss written out.

Each differentiates the softmax cross-entropy of a linear last layer around Theta = 0, with the given
probabilities or logits folded in, so no classifier weights are needed: the kernels' closed forms
(diag p - p p^T, p - e_y) are not used here.
"""
import torch
import torch.nn.functional as F


def reference_hvp(h, p, v, weight=None, damping=0.0, scale=None, check_finite=True):
    """Hessian-vector products of the (weighted, scaled) softmax cross-entropy w.r.t. the last layer,
    by double backward: the loss sum_i w_i s logsumexp(log p_i + Theta [h_i; 1]) has, at Theta = 0,
    the cross-entropy's Hessian (diag p_i - p_i p_i^T) (x) [h_i; 1][h_i; 1]^T; plus damping v."""
    N, Q = p.shape
    scale = 1.0 / max(N, 1) if scale is None else scale
    w = torch.ones(N, dtype=h.dtype, device=h.device) if weight is None else weight
    hb = torch.cat([h, torch.ones(N, 1, dtype=h.dtype, device=h.device)], 1)
    theta = torch.zeros(Q, h.shape[1] + 1, dtype=h.dtype, device=h.device, requires_grad=True)

    def hvp(vk):
        with torch.enable_grad():
            loss = (w * torch.logsumexp(p.log() + hb @ theta.T, 1)).sum() * scale
            (g,) = torch.autograd.grad(loss, theta, create_graph=True)
            (hv,) = torch.autograd.grad(g, theta, grad_outputs=vk, create_graph=vk.requires_grad)
        return hv + damping * vk

    return torch.stack([hvp(vk) for vk in v]) if v.dim() == 3 else hvp(v)


def reference_score(h, logits, target, s):
    """s . grad_Theta CE(z_i, y_i) per sample, as the derivative along Theta = t_i s of the cross-entropy
    at logits z_i + t_i s [h_i; 1], by autograd w.r.t. the per-sample t (one row each)."""
    N = h.shape[0]
    hb = torch.cat([h, torch.ones(N, 1, dtype=h.dtype, device=h.device)], 1)
    t = torch.zeros(N, dtype=h.dtype, device=h.device, requires_grad=True)
    with torch.enable_grad():
        loss = F.cross_entropy(logits + t[:, None] * (hb @ s.T), target, reduction="sum")
        create = any(v.requires_grad for v in (h, logits, s))
        (g,) = torch.autograd.grad(loss, t, create_graph=create)
    return g


def reference_aug(h, logits, h_aug, logits_aug, target, s):
    """I_aug = -(score(augmented) - score(clean)) (fastaug.influence_aug's definition)."""
    return -(reference_score(h_aug, logits_aug, target, s) - reference_score(h, logits, target, s))
