"""The six stage-2 methods of ``fastaug patch``: what one step's loss is, given a batch and its translations.

| method | batches | loss |
|---|---|---|
| ``erm`` | uniform | mean cross-entropy on x |
| ``balanced`` | group-balanced | mean cross-entropy on x (no DRO weights) |
| ``gdro`` | group-balanced | group DRO (Sagawa et al.) over all groups, on x |
| ``augment`` | uniform | mean cross-entropy on x and every translation of x (F(x), G(x)) as plain data |
| ``gdro-augment`` | group-balanced | class-conditional group DRO on x, F(x), G(x) (each in its target group) |
| ``camel`` | group-balanced | class-conditional group DRO on x + lambda * subgroup consistency (x, F(x), G(x)) |

``camel`` is the paper's method (the blog's CLAMP); ``balanced`` and ``gdro-augment`` separate what
its parts give. The pieces live below the methods (:mod:`fastaug.train.group_dro`,
:mod:`fastaug.train.losses`), so each method here is a few lines.
"""
import torch
import torch.nn.functional as F

from ..group_dro import GroupDRO
from ..losses import consistency_loss

__all__ = ["PATCH_METHODS", "PatchBatch", "build_patch_method", "PatchMethod", "gather_batch", "patch_method_class"]


class PatchBatch:
    """One stage-2 batch on the training device.

    Attributes:
        x: (B, C, H, W) float in [0, 1]; y: (B,) int64 classes; group: (B,) int64 groups.
        t: (K, B, C, H, W) float in [0, 1]: x's version in each subgroup k of its class (from stage 1;
            k = x's own subgroup is G(x), the others F(x)), or None for methods that use none.
        t_group: (K, B) int64: the group each version belongs to.
    """

    def __init__(self, x, y, group, t=None, t_group=None):
        self.x, self.y, self.group, self.t, self.t_group = x, y, group, t, t_group


def gather_batch(data, idx, translations=None, device=None):
    """The :class:`PatchBatch` of dataset indices ``idx`` (B,): images, classes and groups looked up in
    ``data`` (a GroupedImageData), and their versions from ``translations`` ((N, K, C, H, W) uint8,
    index-aligned with ``data``) when given. Everything lands on ``device`` as float in [0, 1]."""
    device = torch.device(device) if device is not None else data.images.device
    x = data.images[idx.to(data.images.device)].to(device).float().div_(255.0)
    y = data.labels[idx.to(data.labels.device)].to(device)
    group = data.group_ids[idx.to(data.labels.device)].to(device)
    if translations is None:
        return PatchBatch(x, y, group)
    t = translations[idx.to(translations.device)].to(device).transpose(0, 1).float().div_(255.0)
    k = t.shape[0]
    first = data.group_offsets.to(device)[y]
    t_group = first[None, :] + torch.arange(k, device=device)[:, None]
    return PatchBatch(x, y, group, t, t_group)


class PatchMethod:
    """Base: plain ERM. ``loss(model, batch)`` -> (scalar loss, (B,) per-image CE on x, (B, C) logits of x)."""

    name = "erm"
    balanced = False  # group-balanced batches
    uses_translations = False

    def __init__(self, cfg, group_counts, group_class, device):
        self.cfg = cfg

    def loss(self, model, batch):
        logits = model(batch.x)
        ce = F.cross_entropy(logits.float(), batch.y, reduction="none")
        return ce.mean(), ce.detach(), logits.detach()

    def epoch_metrics(self):
        """Extra per-epoch metrics (the DRO weights)."""
        return {}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class Balanced(PatchMethod):
    name = "balanced"
    balanced = True


class _Robust(PatchMethod):
    class_conditional = False

    def __init__(self, cfg, group_counts, group_class, device):
        super().__init__(cfg, group_counts, group_class, device)
        self.dro = GroupDRO(group_counts, group_class if self.class_conditional else None, step_size=cfg.dro_step,
                            adjustment=cfg.dro_adjustment, device=device)

    def epoch_metrics(self):
        return {"dro_weights": [round(w, 6) for w in self.dro.weights().tolist()]}

    def state_dict(self):
        return {"dro": self.dro.state_dict()}

    def load_state_dict(self, state):
        self.dro.load_state_dict(state["dro"])


class GDRO(_Robust):
    name = "gdro"
    balanced = True

    def loss(self, model, batch):
        logits = model(batch.x)
        ce = F.cross_entropy(logits.float(), batch.y, reduction="none")
        return self.dro.loss(ce, batch.group), ce.detach(), logits.detach()


def _with_translations(model, batch):
    """Logits of x and of its K versions in one forward (one set of BatchNorm statistics): (B, C), (K, B, C)."""
    k, b = batch.t.shape[:2]
    logits = model(torch.cat([batch.x, batch.t.flatten(0, 1)])).float()
    return logits[:b], logits[b:].view(k, b, -1)


class Augment(PatchMethod):
    name = "augment"
    uses_translations = True

    def loss(self, model, batch):
        lx, lt = _with_translations(model, batch)
        ce_x = F.cross_entropy(lx, batch.y, reduction="none")
        ce_t = F.cross_entropy(lt.flatten(0, 1), batch.y.repeat(lt.shape[0]), reduction="none")
        return torch.cat([ce_x, ce_t]).mean(), ce_x.detach(), lx.detach()


class _RobustOnTranslations(_Robust):
    """Group DRO on group-balanced batches that carry each image's translations into the other
    subgroups of its class; subclasses say how the translations enter the objective."""

    balanced = True
    uses_translations = True
    class_conditional = True

    def loss(self, model, batch):
        lx, lt = _with_translations(model, batch)
        ce_x = F.cross_entropy(lx, batch.y, reduction="none")
        return self.objective(lx, lt, ce_x, batch), ce_x.detach(), lx.detach()

    def objective(self, lx, lt, ce_x, batch):
        """The loss to minimise from logits of x (B, C), of its translations (K, B, C) and CE of x (B,)."""
        raise NotImplementedError


class GDROAugment(_RobustOnTranslations):
    name = "gdro-augment"

    def objective(self, lx, lt, ce_x, batch):
        # the translations are extra samples of the subgroups they were translated into
        ce_t = F.cross_entropy(lt.flatten(0, 1), batch.y.repeat(lt.shape[0]), reduction="none")
        return self.dro.loss(torch.cat([ce_x, ce_t]), torch.cat([batch.group, batch.t_group.flatten()]))


class Camel(_RobustOnTranslations):
    name = "camel"

    def objective(self, lx, lt, ce_x, batch):
        # group DRO on the real images, plus the consistency of their predictions with the translations'
        consistency = consistency_loss(lx, lt).mean()
        self.last_consistency = consistency.detach()
        return self.dro.loss(ce_x, batch.group) + self.cfg.consistency_weight * consistency


_METHODS = {m.name: m for m in (PatchMethod, Balanced, GDRO, Augment, GDROAugment, Camel)}
PATCH_METHODS = tuple(_METHODS)


def patch_method_class(name):
    """The class of stage-2 method ``name`` (one of :data:`PATCH_METHODS`)."""
    if name not in _METHODS:
        raise ValueError(f"unknown patching method {name!r}; choose from {', '.join(PATCH_METHODS)}")
    return _METHODS[name]


def build_patch_method(name, cfg, group_counts, group_class, device):
    """The stage-2 method ``name`` (one of :data:`PATCH_METHODS`)."""
    return patch_method_class(name)(cfg, group_counts, group_class, device)
