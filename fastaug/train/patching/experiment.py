"""What ``fastaug patch`` runs: stage 1 once, stage 2 for every (method, seed), then the comparison's outputs.

Folder layout (``root``): ``patch.json`` (the configuration), ``translation/`` (stage 1),
``augmentation.pt`` (stage 1's translations as a loadable augmentation, ``fastaug.augment.load(root)``),
``<method>/seed<k>/`` (one engine run each), ``stages.json`` (each stage's seconds), and the
comparison: ``patching.md``, ``patching.csv`` (last epoch), ``patching_selected.csv`` (the epoch
selected on the validation split), ``patching.png``, ``saliency.png``. Every stage's
folder and result comes from the pipeline (the saliency figure loads the ``classifier`` artifacts of
the runs' results).

The validation split (``--val-fraction`` of the training images, seeded by ``--data-seed``;
:func:`~fastaug.data.subgroups.load_grouped_dataset`) is held out of both stages: stage 1 grades its
translations on it, stage 2 selects each run's epoch on it.
"""
import dataclasses
import json
import os
import sys

import torch

from ...artifacts import atomic_copy, atomic_write_text
from ...augment.learned_module import AUGMENTATION_FILE
from ...data.subgroups import load_grouped_dataset
from ...figures import save_figure
from ...models import load_classifier
from ..args import default_args
from ..checkpoint import hold_folder, run_exists
from ..distributed import rank_and_world, resolve_device
from ..pipeline import Pipeline
from .grading import THRESHOLDS
from .methods import patch_method_class
from .report import curves_figure, quality_markdown, saliency_figure, table_csv, write_table
from .selection import SELECTION_RULE, select_epoch
from .stages import PatchedTrainingStage, TranslationStage, final_records

__all__ = ["run_patching", "engine_args"]


def engine_args(cfg, device, checkpoint_every, progress):
    """The engine's arguments for stage 2: SGD with momentum at a constant rate, no augmentation (the
    paper's MNIST setting); output folder, seed and method are set per stage."""
    return default_args(dataset=cfg.translation.dataset, model=cfg.model, epochs=cfg.epochs,
                        batch_size=cfg.batch_size, opt="sgd", lr=cfg.lr, momentum=cfg.momentum,
                        wd=cfg.weight_decay, sched=cfg.sched, crop_padding=0, cutout=0, fill=0, no_flip=True,
                        device=str(device), eval_batch_size=cfg.eval_batch_size, progress=progress,
                        checkpoint_every=checkpoint_every)


def _saliency(root, cfg, train, test, device, results):
    """saliency.png: ERM and the patched model (camel, else the last other method) on minority-subgroup
    test images; ``results``: the pipeline's {stage name: StageResult} (each run's ``classifier``)."""
    patched = "camel" if "camel" in cfg.methods else next((m for m in reversed(cfg.methods) if m != "erm"), None)
    if "erm" not in cfg.methods or patched is None or cfg.saliency_images < 1:
        return None
    counts, cls = train.group_counts(), train.group_class
    minority = [int(min(((counts[g], g) for g in range(train.num_groups) if cls[g] == y))[1])
                for y in range(train.num_classes)]
    per = max(1, cfg.saliency_images // len(minority))
    ids = test.group_ids.cpu()
    members = [(ids == g).nonzero().squeeze(1) for g in minority]  # spread over each group (digits vary)
    picks = torch.cat([m[torch.linspace(0, m.numel() - 1, min(per, m.numel())).round().long()] for m in members
                       if m.numel()])
    if picks.numel() == 0:
        return None
    x = test.images[picks].to(device).float() / 255.0
    y = test.labels[picks].to(device)
    models = {m: load_classifier(results[os.path.join(m, f"seed{cfg.seeds[0]}")].artifact("classifier"), device)
              for m in ("erm", patched)}
    titles = [test.group_names[int(ids[i])] for i in picks]
    return save_figure(saliency_figure(models, x, y, titles), os.path.join(root, "saliency.png"))


def _warn(msg):
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def _check_balanced_batch_size(cfg, train):
    """Refuse, before stage 1 trains for minutes, a --batch-size too small for a group-balanced batch (one
    image of every non-empty training group) when a method uses those batches."""
    balanced = [m for m in cfg.methods if patch_method_class(m).balanced]
    groups = int((torch.bincount(train.group_ids.cpu(), minlength=train.num_groups) > 0).sum())
    if balanced and cfg.batch_size < groups:
        raise ValueError(f"--batch-size {cfg.batch_size} is too small for the group-balanced batches of "
                         f"{', '.join(balanced)}: they hold at least one image of each of the {groups} training "
                         f"groups; use --batch-size {groups} or more")


def run_patching(cfg, root, *, resume=False, device="auto", checkpoint_every=50, progress=True, warn=_warn,
                 on_start=None):
    """Run (or continue with ``resume``) the comparison of ``cfg`` (a validated, resolved PatchConfig) in ``root``.

    ``warn(sentence)`` receives the one warning line of a flagged stage 1 (:mod:`.grading`), on every
    run, a reused stage 1 included. ``on_start()`` is called once the folder is accepted and marked, before
    stage 1 (``fastaug patch`` writes its args.json there, so that ``--resume`` after a kill reads them).

    Returns {"robust": {method: mean robust accuracy at the selected epoch (the last without a
    validation split)}, "results": the pipeline's {stage name: StageResult}, "quality": stage 1's graded
    translations (None when not graded)}.
    """
    config_path = os.path.join(root, "patch.json")
    if os.path.exists(config_path) and not resume:
        raise run_exists(root, "a model patching comparison (patch.json)")
    dev = resolve_device(device)
    t = cfg.translation
    train, val, test = load_grouped_dataset(t.dataset, data_dir=t.data_dir, correlation=t.correlation,
                                            image_size=t.image_size, grey=t.grey, seed=t.data_seed,
                                            val_fraction=t.val_fraction)
    _check_balanced_batch_size(cfg, train)
    os.makedirs(root, exist_ok=True)
    if rank_and_world()[0] == 0:
        hold_folder(root)  # a second process started into this folder is refused before it writes
    config_text = json.dumps(dataclasses.asdict(cfg), indent=2, default=str) + "\n"
    if not os.path.exists(config_path):  # marks the folder at once; rewritten once the stages accepted cfg
        atomic_write_text(config_text, config_path)
    if on_start is not None:
        on_start()
    args = engine_args(cfg, dev, checkpoint_every, progress)
    runs = [PatchedTrainingStage(m, s, cfg, args, train, val, test) for m in cfg.methods for s in cfg.seeds]
    held = val if val is not None else test  # graded on images the CycleGANs never saw
    stages = ([TranslationStage(t, train, held, dev, checkpoint_every, progress)]
              if any(r.needs for r in runs) else []) + runs
    pipeline = Pipeline(root, stages)
    results = pipeline.run()
    atomic_write_text(config_text, config_path)

    finals, histories = final_records({(r.method, r.seed): pipeline.folder(r) for r in runs})
    selected = {m: [select_epoch(h) for h in hs] for m, hs in histories.items()} if val is not None else None
    md, csv_text = write_table(finals, test.group_names, test.classes, t.dataset, cfg.seeds, selected=selected,
                               selection_rule=SELECTION_RULE)
    stage1 = results.get(TranslationStage.name)
    quality = stage1.metrics.get("quality") if stage1 is not None else None
    if stage1 is not None and "augmentation" in stage1.artifacts:  # a stage 1 of an older fastaug wrote none
        atomic_copy(stage1.artifacts["augmentation"], os.path.join(root, AUGMENTATION_FILE))
    if quality is not None:
        md += "\n" + quality_markdown(quality, THRESHOLDS)
        if quality["flags"]:
            warn(f"stage 1's translations look wrong: {'; '.join(quality['flags'])} (patching.md, "
                 f"translation/stage.json; try other --gan-steps / --gan-lr)")
    atomic_write_text(md, os.path.join(root, "patching.md"))
    atomic_write_text(csv_text, os.path.join(root, "patching.csv"))
    if selected is not None:
        atomic_write_text(table_csv(selected, test.group_names, test.classes),
                          os.path.join(root, "patching_selected.csv"))
    save_figure(curves_figure(histories, t.dataset), os.path.join(root, "patching.png"))
    _saliency(root, cfg, train, test, dev, results)
    chosen = selected if selected is not None else finals
    robust = {m: sum(r["robust_acc"] for r in rs) / len(rs) for m, rs in chosen.items()}
    return {"robust": robust, "results": results, "quality": quality}
