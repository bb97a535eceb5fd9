"""Subgroup consistency loss of model patching (Goel et al., "Model Patching", eq. 5; the blog's CLAMP).

For an image x and its translations t_1..t_K into every subgroup of its class (K = 2 in the paper:
F(x) into the other subgroup, G(x) back into x's own), with p = softmax of the logits and
m = (p_1 + ... + p_K) / K:

    L = 1/2 KL(p_x || m) + 1/2 JS(p_1, ..., p_K),   JS = (1/K) sum_k KL(p_k || m)

so for K = 2: L = 1/2 KL(p_x || m) + 1/4 KL(p_F || m) + 1/4 KL(p_G || m). The first term pulls the
prediction on x towards the translations' average, the second makes the translations agree. As the
authors' code, probabilities are clipped to [1e-7, 1] before the logarithms and no term is detached
(gradients reach p_x, p_F, p_G and m alike). The caller scales by lambda and averages.
"""
import torch

__all__ = ["consistency_loss", "kl_divergence"]

_CLIP = 1e-7


def kl_divergence(p, q):
    """KL(p || q) along the last dimension of probability tensors, clipped at 1e-7: (...,)."""
    p, q = p.clamp(_CLIP, 1.0), q.clamp(_CLIP, 1.0)
    return (p * (p.log() - q.log())).sum(-1)


def consistency_loss(logits_x, logits_t):
    """Per-image subgroup consistency loss.

    Args:
        logits_x: (B, C) logits of the images.
        logits_t: (K, B, C) logits of their K translations (one per subgroup of each image's class),
            or a list of K (B, C) tensors.

    Returns:
        (B,) float: 1/2 KL(p_x || m) + 1/2 (1/K) sum_k KL(p_k || m), m the mean of the K translated
        predictions; 0 where all predictions agree.
    """
    if isinstance(logits_t, (list, tuple)):
        logits_t = torch.stack(list(logits_t))
    if logits_t.dim() != 3 or logits_t.shape[1:] != logits_x.shape or logits_t.shape[0] < 1:
        raise ValueError(f"logits_t must be (K, B, C) with (B, C) = {tuple(logits_x.shape)}, "
                         f"got {tuple(logits_t.shape)}")
    p_x = logits_x.float().softmax(-1)
    p_t = logits_t.float().softmax(-1)
    m = p_t.mean(0)
    return 0.5 * kl_divergence(p_x, m) + 0.5 * kl_divergence(p_t, m.expand_as(p_t)).mean(0)
