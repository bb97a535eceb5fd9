"""Stage 1's arguments and F as the stages after it use it (the stage itself is an engine run that
writes F as a ``classifier`` artifact), and stage 3 (fit last-layer influence on F and cache s_val
from the held-out validation split)."""
import json
import os
import time

import torch.nn.functional as F

from ...artifacts import load_artifact, save_artifact
from ...influence import LastLayerInfluence
from ...models import load_classifier
from ..args import replace_args
from ..checkpoint import atomic_write_text
from ..loop import on_terminal
from .options import InfluenceOptions

__all__ = ["classifier_args", "frozen_classifier", "float_batches", "fit_influence", "load_influence",
           "VALIDATION_KIND"]

#: The artifact kind of stage 3's validation features (h, logits, y of the validation split through F).
VALIDATION_KIND = "influence-validation"


def classifier_args(args, output_dir):
    """The arguments of stage 1 (a new namespace): the run's own, with ``--augment standard``, the
    stage's folder, and none of this method's options (so the stage's ``args.json`` holds only what
    decides it)."""
    return replace_args(args, drop=[f for f in InfluenceOptions.stage_of() if hasattr(args, f)],
                        augment="standard", output_dir=output_dir)


def frozen_classifier(path, device):
    """F from stage 1's ``classifier`` artifact: eval mode, parameters frozen (``requires_grad=False``)."""
    model = load_classifier(path, device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def float_batches(data, batch_size, device, workers=4):
    """The images of ``data`` in order, as a list of (x float in [0, 1], y) batches on ``device``
    (a folder dataset is decoded by ``workers`` DataLoader processes, stopped before this returns)."""
    from ...data import make_batches

    batches = make_batches(data, batch_size, device, train=False, workers=workers)
    try:
        return [(x.float().div_(255.0), y) for x, y in batches.epoch(0)]
    finally:
        batches.close()


def fit_influence(folder, model, train_data, val_data, options, args, device):
    """Stage 3: LastLayerInfluence on F's last layer over the (un-augmented) training images, s_val from
    the validation split, saved as the artifacts ``influence.pt`` (``last-layer-influence``) and
    ``validation.pt`` (``influence-validation``). Returns ``(metrics, {artifact name: path})``: F's
    validation loss/accuracy, the solver's report, the spread of ``I_up,loss`` over the training points."""
    tick = time.perf_counter()
    # bars only on a terminal, as the loops' (tqdm's disable=None): a log file (nohup, CI) gets no \r-bars
    inf = LastLayerInfluence(model, damping=options.influence_damping, progress=bool(args.progress) and on_terminal())
    inf.fit(float_batches(train_data, args.eval_batch_size, device, args.workers))
    val_h, val_logits, val_y = inf.features(float_batches(val_data, args.eval_batch_size, device, args.workers),
                                            desc="validation features")
    inf.s_val(h=val_h, logits=val_logits, y=val_y)
    provenance = {"dataset": args.dataset, "model": args.model, "train_points": len(train_data),
                  "val_points": int(val_y.numel())}
    paths = {"influence": inf.save(os.path.join(folder, "influence.pt"), meta=provenance),
             "validation": save_artifact(VALIDATION_KIND, {"h": val_h, "logits": val_logits, "y": val_y},
                                         os.path.join(folder, "validation.pt"), meta=provenance)}
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
    return metrics, paths


def load_influence(influence_path, validation_path, model, device):
    """The fitted influence of stage 3 (with s_val) and the validation features (h, logits, y)."""
    inf = LastLayerInfluence.load(influence_path, model, device=device, progress=False)
    val = load_artifact(VALIDATION_KIND, validation_path, map_location=device).state
    return inf, (val["h"], val["logits"], val["y"])
