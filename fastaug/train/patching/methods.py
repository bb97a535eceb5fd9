"""The six stage-2 methods of ``fastaug patch``: plain :class:`~fastaug.train.method.Method` subclasses on
the plain engine, each saying which batches it trains on and what one step's loss is.

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

A method is built by the engine as ``cls(cfg, trainer, translations=path)``: ``cfg`` the
:class:`~fastaug.train.patching.config.PatchConfig` (its options), ``translations`` the
``patching-translations`` artifact of stage 1 (handed on by the pipeline; required by the methods
that use translations, which refuse in one sentence without it). Each batch is looked up by its
dataset indices (:meth:`PatchMethod.make_batch`): ``batch.group`` holds each image's group and
``batch.extras`` its translations, ``"t"`` (K, B, C, H, W) float in [0, 1] (version k of x in
subgroup k of its class: k = x's own subgroup is G(x), the others F(x)) and ``"t_group"`` (K, B) int64
(the group each version belongs to). Every epoch ends with per-subgroup test accuracy in
``metrics.jsonl`` (and the DRO weights of the robust methods, saved in every checkpoint).
"""
import torch
import torch.nn.functional as F

from ..group_dro import GroupDRO
from ..losses import consistency_loss
from ..method import Method, TrainBatch, required
from .evaluation import group_accuracy, summarise_groups
from .sampling import BalancedBatches
from .translation import load_translations

__all__ = ["PATCH_METHODS", "PatchMethod", "gather_batch", "patch_method_class"]


def gather_batch(data, idx, translations=None, device=None):
    """The :class:`~fastaug.train.method.TrainBatch` of dataset indices ``idx`` (B,): images, classes and
    groups looked up in ``data`` (a GroupedImageData), and their versions from ``translations``
    ((N, K, C, H, W) uint8, index-aligned with ``data``) in ``extras`` (``"t"``, ``"t_group"``: module
    docstring) when given. Everything lands on ``device`` as float in [0, 1]."""
    device = torch.device(device) if device is not None else data.images.device
    x = data.images[idx.to(data.images.device)].to(device).float().div_(255.0)
    y = data.labels[idx.to(data.labels.device)].to(device)
    group = data.group_ids[idx.to(data.labels.device)].to(device)
    batch = TrainBatch(x, y, group=group, index=idx.to(device))
    if translations is not None:
        t = translations[idx.to(translations.device)].to(device).transpose(0, 1).float().div_(255.0)
        first = data.group_offsets.to(device)[y]
        batch.extras = {"t": t, "t_group": first[None, :] + torch.arange(t.shape[0], device=device)[:, None]}
    return batch


class PatchMethod(Method):
    """Base: plain ERM on uniform batches (the engine's cross-entropy); per-subgroup test accuracy per epoch.

    Args:
        options: the :class:`~fastaug.train.patching.config.PatchConfig`; trainer: the engine (its
            ``train_data`` / ``test_data`` are GroupedImageData).
        translations: the path of stage 1's ``patching-translations`` artifact, or its (N, K, C, H, W)
            uint8 tensor index-aligned with ``trainer.train_data`` (for the methods that use translations).
    """

    name = "erm"
    balanced = False  # group-balanced batches
    uses_translations = False

    def __init__(self, options, trainer, translations=None):
        super().__init__(options, trainer)
        self.cfg = options
        self.data = trainer.train_data.to(trainer.device)  # batches are gathered on the device, once moved
        self.translations = None
        if self.uses_translations:
            required(translations, f"model patching's {self.name} trains on the translations of stage 1, and none "
                                   f"were given: run it through fastaug patch, or pass inputs={{'translations': "
                                   f"<translation/translations.pt>}}")
            if not isinstance(translations, torch.Tensor):
                translations = load_translations(translations, trainer.train_data)
            elif translations.shape[0] != len(self.data):
                raise ValueError(f"translations hold {translations.shape[0]} images, the training set "
                                 f"{len(self.data)}: they must be index-aligned")
            self.translations = translations.to(trainer.device)

    def train_batches(self, trainer):
        if not self.balanced:
            return None
        return BalancedBatches(self.data, trainer.args.batch_size, trainer.args.seed)

    def make_batch(self, x, y, index, trainer):
        return gather_batch(self.data, index, self.translations, trainer.device)

    def epoch_end(self, epoch, trainer):
        correct, total, _ = group_accuracy(trainer.module, trainer.test_data, self.cfg.eval_batch_size, trainer.device)
        return {**summarise_groups(correct, total, trainer.test_data), **self.epoch_metrics()}

    def epoch_metrics(self):
        """Extra per-epoch metrics (the DRO weights)."""
        return {}


class Balanced(PatchMethod):
    name = "balanced"
    balanced = True


class _Robust(PatchMethod):
    class_conditional = False

    def __init__(self, options, trainer, translations=None):
        super().__init__(options, trainer, translations)
        self.dro = GroupDRO(self.data.group_counts(), self.data.group_class if self.class_conditional else None,
                            step_size=options.dro_step, adjustment=options.dro_adjustment, device=trainer.device)

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
        return self.dro.loss(ce, batch.group), {"losses": ce.detach(), "logits": logits.detach()}


def _with_translations(model, batch):
    """Logits of x and of its K versions in one forward (one set of BatchNorm statistics): (B, C), (K, B, C)."""
    t = batch.extras["t"]
    k, b = t.shape[:2]
    logits = model(torch.cat([batch.x, t.flatten(0, 1)])).float()
    return logits[:b], logits[b:].view(k, b, -1)


class Augment(PatchMethod):
    name = "augment"
    uses_translations = True

    def loss(self, model, batch):
        lx, lt = _with_translations(model, batch)
        ce_x = F.cross_entropy(lx, batch.y, reduction="none")
        ce_t = F.cross_entropy(lt.flatten(0, 1), batch.y.repeat(lt.shape[0]), reduction="none")
        return torch.cat([ce_x, ce_t]).mean(), {"losses": ce_x.detach(), "logits": lx.detach()}


class _RobustOnTranslations(_Robust):
    """Group DRO on group-balanced batches that carry each image's translations into the other
    subgroups of its class; subclasses say how the translations enter the objective."""

    balanced = True
    uses_translations = True
    class_conditional = True

    def loss(self, model, batch):
        lx, lt = _with_translations(model, batch)
        ce_x = F.cross_entropy(lx, batch.y, reduction="none")
        loss, logs = self.objective(lx, lt, ce_x, batch)
        return loss, {"losses": ce_x.detach(), "logits": lx.detach(), **logs}

    def objective(self, lx, lt, ce_x, batch):
        """``(loss to minimise, extra logs)`` from logits of x (B, C), of its translations (K, B, C) and
        CE of x (B,)."""
        raise NotImplementedError


class GDROAugment(_RobustOnTranslations):
    name = "gdro-augment"

    def objective(self, lx, lt, ce_x, batch):
        # the translations are extra samples of the subgroups they were translated into
        ce_t = F.cross_entropy(lt.flatten(0, 1), batch.y.repeat(lt.shape[0]), reduction="none")
        return self.dro.loss(torch.cat([ce_x, ce_t]), torch.cat([batch.group, batch.extras["t_group"].flatten()])), {}


class Camel(_RobustOnTranslations):
    name = "camel"

    def objective(self, lx, lt, ce_x, batch):
        # group DRO on the real images, plus the consistency of their predictions with the translations'
        consistency = consistency_loss(lx, lt).mean()
        loss = self.dro.loss(ce_x, batch.group) + self.cfg.consistency_weight * consistency
        return loss, {"consistency": consistency.detach()}


_METHODS = {m.name: m for m in (PatchMethod, Balanced, GDRO, Augment, GDROAugment, Camel)}
PATCH_METHODS = tuple(_METHODS)


def patch_method_class(name):
    """The Method subclass of stage-2 method ``name`` (one of :data:`PATCH_METHODS`)."""
    if name not in _METHODS:
        raise ValueError(f"unknown patching method {name!r}; choose from {', '.join(PATCH_METHODS)}")
    return _METHODS[name]
