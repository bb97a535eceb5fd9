"""(Class-conditional) group DRO as a weighting object with state (Sagawa et al. 2020; Goel et al. 2021).

Group DRO minimises the worst group's expected loss by keeping log-weights ``q`` over groups and
moving them by exponentiated gradient ascent each step:

    a_g = C / sqrt(n_g)                  (group adjustment: n_g training images of group g)
    q_g <- q_g + eta (l_g + a_g)         (l_g: mean loss of the batch's images of group g; 0 if none)
    loss = sum_y (|G_y| / |G|) sum_{g in G_y} softmax(q_{G_y})_g l_g

Class-conditional (CAMEL): the softmax runs over the groups G_y of each class y separately, and the
classes are weighted by their share of groups, so each class attends to its own worst subgroup.
Plain group DRO (Sagawa et al.) is the case of one "class" holding every group.

Choices (documented in docs/model_patching.md):

* ``q`` is updated from the detached losses and the returned loss uses the *updated* weights with the
  unadjusted losses, as Sagawa et al.'s ``LossComputer`` does: the weights are a state of the
  optimisation, not a function the classifier's gradient flows through. (The model-patching code
  keeps the update in the graph and adds a_g inside the loss; a_g is a constant there and changes no
  gradient, and the only difference is the second-order path through q.)
* A group absent from the batch gets l_g = 0 (as Sagawa et al.): its weight moves by eta a_g only.
"""
import torch

__all__ = ["GroupDRO"]


class GroupDRO:
    """Robust weights over groups; ``loss(per_sample_loss, group)`` updates them and returns the loss.

    Args:
        group_counts: (G,) training images per group (for the adjustment C / sqrt(n_g)).
        group_class: (G,) int64, the class of each group; ``None`` (or all equal) = plain group DRO.
        step_size: eta, the step of the log-weights (the paper: 0.01).
        adjustment: C of the group adjustment (0 = none; the paper's MNIST: 1).
        device: where ``q`` lives (the training device).

    State (``state_dict``): ``q`` (G,) float64 log-weights, saved in every checkpoint.
    """

    def __init__(self, group_counts, group_class=None, step_size=0.01, adjustment=0.0, device="cpu"):
        counts = torch.as_tensor(group_counts, dtype=torch.float64)
        if counts.dim() != 1 or counts.numel() < 1 or bool((counts < 0).any()):
            raise ValueError(f"group_counts must be a 1-D tensor of non-negative counts, got {counts.tolist()}")
        group_class = torch.zeros(counts.numel(), dtype=torch.int64) if group_class is None \
            else torch.as_tensor(group_class, dtype=torch.int64)
        if group_class.shape != counts.shape:
            raise ValueError(f"group_class must give the class of each of the {counts.numel()} groups, "
                             f"got shape {tuple(group_class.shape)}")
        if not step_size >= 0 or not adjustment >= 0:
            raise ValueError(f"step_size and adjustment must be >= 0, got {step_size} and {adjustment}")
        self.device = torch.device(device)
        self.step_size = float(step_size)
        self.num_groups = counts.numel()
        # a group with no training image gets no adjustment (it never appears in a batch)
        self.adjust = (float(adjustment) / counts.clamp_min(1).sqrt()).where(counts > 0, 0.0).to(self.device)
        _, self.group_class = torch.unique(group_class, return_inverse=True)  # classes 0..k-1
        self.group_class = self.group_class.to(self.device)
        self.num_classes = int(self.group_class.max()) + 1
        share = torch.bincount(self.group_class, minlength=self.num_classes).double()
        self.class_weight = (share / self.num_groups)[self.group_class]  # |G_y| / |G| per group
        self.q = torch.zeros(self.num_groups, dtype=torch.float64, device=self.device)

    def weights(self):
        """(G,) float64: each group's weight in the loss, (|G_y|/|G|) softmax(q_{G_y})_g; sums to 1."""
        q = self.q - self.q.max()  # exp is stable; the within-class softmax does not change
        e = q.exp()
        per_class = torch.zeros(self.num_classes, dtype=e.dtype, device=e.device).index_add_(0, self.group_class, e)
        return self.class_weight * e / per_class[self.group_class]

    def group_losses(self, per_sample_loss, group):
        """(G,) mean loss of each group's samples in the batch (0 for absent groups), and (G,) counts."""
        group = group.to(per_sample_loss.device)
        sums = torch.zeros(self.num_groups, dtype=per_sample_loss.dtype, device=per_sample_loss.device)
        sums = sums.index_add(0, group, per_sample_loss)
        counts = torch.bincount(group, minlength=self.num_groups).to(per_sample_loss.dtype)
        return sums / counts.clamp_min(1), counts

    def loss(self, per_sample_loss, group, update=True):
        """The robust loss of a batch, after moving ``q`` (unless ``update`` is False).

        Args:
            per_sample_loss: (B,) losses (with gradient).
            group: (B,) int64 group of each sample, in [0, G).

        Returns:
            scalar: sum_g w_g l_g with the updated weights w (:meth:`weights`), differentiable in the
            losses only.
        """
        if per_sample_loss.shape != group.shape:
            raise ValueError(f"per_sample_loss {tuple(per_sample_loss.shape)} and group {tuple(group.shape)} "
                             f"must have the same shape")
        losses, _ = self.group_losses(per_sample_loss, group)
        if update:
            with torch.no_grad():
                self.q += self.step_size * (losses.detach().to(self.q) + self.adjust)
        return (self.weights().to(losses.dtype) * losses).sum()

    def state_dict(self):
        return {"q": self.q.detach().cpu().clone()}

    def load_state_dict(self, state):
        q = state["q"]
        if not isinstance(q, torch.Tensor) or q.shape != self.q.shape:
            raise ValueError(f"the checkpoint's group DRO weights have shape {tuple(getattr(q, 'shape', ()))}, "
                             f"this run has {self.num_groups} groups")
        self.q = q.to(self.q)
