"""Stage 1's arguments and F loaded from it (the stage itself is an engine run), and stage 3 (fit
last-layer influence on F and cache s_val from the held-out validation split)."""
import copy
import json
import os
import time

import torch
import torch.nn.functional as F

from ...influence import LastLayerInfluence
from ...models import build_model
from ..checkpoint import atomic_save, atomic_write_text, load_checkpoint
from .options import NEUTRAL_OPTIONS, OPTION_STAGE

__all__ = ["classifier_args", "load_classifier", "float_batches", "fit_influence",
           "load_influence"]


def classifier_args(args, output_dir):
    """The arguments of stage 1: the run's own, with ``--augment standard``, the stage's folder, and
    none of this method's options (so the stage's ``args.json`` holds only what decides it)."""
    a = copy.deepcopy(args)
    for key in list(OPTION_STAGE) + list(NEUTRAL_OPTIONS):
        if hasattr(a, key):
            delattr(a, key)
    a.augment, a.output_dir = "standard", output_dir
    a.resume = os.path.isfile(os.path.join(output_dir, "checkpoint.pt"))  # an interrupted stage 1 continues
    return a


def load_classifier(folder, args, data, device):
    """F from stage 1's checkpoint: eval mode, parameters frozen (``requires_grad=False``)."""
    state = load_checkpoint(os.path.join(folder, "checkpoint.pt"), map_location=device)
    model = build_model(args.model, data.num_classes, data.channels, mean=data.mean, std=data.std)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def float_batches(data, batch_size, device):
    """The images of ``data`` in order, as a list of (x float in [0, 1], y) batches on ``device``."""
    from ...data import make_batches

    return [(x.float().div_(255.0), y) for x, y in make_batches(data, batch_size, device, train=False).epoch(0)]


def fit_influence(folder, model, train_data, val_data, args, device, progress=True):
    """Stage 3: LastLayerInfluence on F's last layer over the (un-augmented) training images, s_val from
    the validation split, saved to ``influence.pt``. Returns the stage's metrics: F's validation
    loss/accuracy, the solver's report, and the spread of ``I_up,loss`` over the training points."""
    tick = time.perf_counter()
    inf = LastLayerInfluence(model, damping=args.influence_damping, progress=progress)
    inf.fit(float_batches(train_data, args.eval_batch_size, device))
    val_h, val_logits, val_y = inf.features(float_batches(val_data, args.eval_batch_size, device),
                                            desc="validation features")
    inf.s_val(h=val_h, logits=val_logits, y=val_y)
    inf.save(os.path.join(folder, "influence.pt"))
    atomic_save({"h": val_h.cpu(), "logits": val_logits.cpu(), "y": val_y.cpu()}, os.path.join(folder, "validation.pt"))
    up = inf.influence_up_loss()
    info = inf.solve_info
    metrics = {
        "val_loss": F.cross_entropy(val_logits, val_y).item(),
        "val_acc": (val_logits.argmax(1) == val_y).double().mean().item(),
        "train_loss": inf.losses().mean().item(), "train_points": int(inf.h.shape[0]),
        "val_points": int(val_y.numel()), "parameters": int(inf.num_params),
        "solver": getattr(info, "method", None), "solver_residual": getattr(info, "residual", None),
        "mean_influence_up": up.mean().item(), "helpful_fraction": (up < 0).double().mean().item(),
        "seconds": time.perf_counter() - tick,
    }
    atomic_write_text(json.dumps(metrics) + "\n", os.path.join(folder, "metrics.jsonl"))
    return metrics


def load_influence(folder, model, device):
    """The fitted influence of stage 3 (with s_val) and the validation features (h, logits, y)."""
    inf = LastLayerInfluence.load(os.path.join(folder, "influence.pt"), model, device=device, progress=False)
    val = torch.load(os.path.join(folder, "validation.pt"), map_location=device, weights_only=True)
    return inf, (val["h"], val["logits"], val["y"])
