"""REINFORCE maths shared by the policy-search loops (Adversarial AutoAugment and TANDA).

* :class:`LossWindow`: the moving average of the per-policy losses L_m over an update window
  (AdvAA eq. 9: the mean over the epoch in the paper, footnote 2; or an exponential moving average).
* :func:`normalise_losses`: (L - mean) / (std + eps) across the M instances (AdvAA Algorithm 1, line 9).
* :func:`adversarial_controller_loss`: -mean(L̂_m · log p_m) - w · mean(entropy_m) (eq. 9 with the
  paper's entropy penalty, section 4.1).
* :func:`discounted_returns` and :func:`batch_baseline_advantages`: TANDA's per-step credit
  assignment (future incremental rewards discounted by gamma, minus the batch mean at each step).
"""
import torch

__all__ = ["LossWindow", "normalise_losses", "adversarial_controller_loss", "discounted_returns",
           "batch_baseline_advantages"]


class LossWindow:
    """Running average of the per-policy losses (M,) over the steps of an update window.

    ``mode="mean"``: the arithmetic mean of the window's steps (the paper: the window is an epoch).
    ``mode="ema"``: ``avg <- decay * avg + (1 - decay) * L_t``, started at the window's first L_t.
    Sums are kept in float64 so a resumed run continues bit-identically.
    """

    def __init__(self, M, mode="mean", decay=0.9):
        if mode not in ("mean", "ema"):
            raise ValueError(f"mode must be 'mean' or 'ema', got {mode!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.M, self.mode, self.decay = int(M), mode, float(decay)
        self.reset()

    def reset(self):
        self.total = torch.zeros(self.M, dtype=torch.float64)
        self.steps = 0

    def add(self, losses):
        """Fold in one step's per-policy losses (M,)."""
        losses = losses.detach().to("cpu", torch.float64)
        if losses.shape != (self.M,):
            raise ValueError(f"losses must have shape ({self.M},), got {tuple(losses.shape)}")
        if self.mode == "mean" or self.steps == 0:
            self.total = self.total + losses
        else:
            self.total = self.decay * self.total + (1.0 - self.decay) * losses
        self.steps += 1

    def value(self):
        """The window's average (M,) float64; zeros before the first step."""
        if self.mode == "mean":
            return self.total / max(self.steps, 1)
        return self.total.clone()

    def state_dict(self):
        return {"total": self.total.clone(), "steps": self.steps}

    def load_state_dict(self, state):
        self.total, self.steps = state["total"].to(torch.float64).clone(), int(state["steps"])


def normalise_losses(losses, eps=1e-5):
    """(L - mean(L)) / (std(L) + eps) over the last dimension (std with Bessel's correction, as the
    unofficial reproduction's ``torch.std``); M = 1 gives zeros."""
    if losses.shape[-1] < 2:
        return torch.zeros_like(losses)
    return (losses - losses.mean(-1, keepdim=True)) / (losses.std(-1, keepdim=True) + eps)


def adversarial_controller_loss(normalised_losses, log_prob, entropy, entropy_weight):
    """The controller's loss to minimise: -mean(L̂ · log p) - entropy_weight · mean(entropy).

    ``normalised_losses`` (M,) are constants (no gradient); ``log_prob``/``entropy`` (M,) carry the
    controller's gradients. Minimising it raises the probability of the policies with above-average
    training loss (the adversary maximises the target network's loss, eq. 7).
    """
    adv = normalised_losses.detach().to(log_prob.dtype)
    return -(adv * log_prob).mean() - entropy_weight * entropy.mean()


def discounted_returns(rewards, gamma):
    """rewards (B, T) of each step -> (B, T) returns sum_{s >= t} gamma^(s - t) rewards[:, s]."""
    out = torch.empty_like(rewards)
    acc = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        acc = rewards[:, t] + gamma * acc
        out[:, t] = acc
    return out


def batch_baseline_advantages(returns):
    """returns (B, T) minus their mean over the batch at each step (TANDA's baseline)."""
    return returns - returns.mean(0, keepdim=True)
