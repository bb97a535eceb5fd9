"""Which epoch of a stage-2 run is the result: model selection on the validation split.

The robust accuracy of every method swings by several points from one epoch to the next (the worst
group is small, the minority groups are a few dozen images), so the last epoch is a noisy pick. The
paper selects the classifier on *validation* robust accuracy (the authors' code evaluates a held-out
part of the training groups every epoch). Here every epoch's ``metrics.jsonl`` record carries the
validation split's metrics (:func:`~.evaluation.validation_summary`) and :func:`select_epoch` picks:

* the epoch of the highest ``val_robust_acc`` (worst validation group);
* ties (a minority validation group of a few images makes them common) broken by the lower
  ``val_worst_loss``, then by the later epoch.

The test metrics of the selected epoch are what the table reports beside the last epoch's; the test
split plays no part in the choice.
"""
__all__ = ["select_epoch", "SELECTION_RULE"]

#: In words, for tables and docs.
SELECTION_RULE = "highest validation robust accuracy, ties to the lower worst-group validation loss"


def select_epoch(history):
    """The selected record of a run's ``history`` (its per-epoch metrics records, in order); the last
    record when the run has no validation metrics."""
    if not history:
        raise ValueError("a run without epochs has nothing to select")
    if "val_robust_acc" not in history[-1]:
        return history[-1]
    return max(history, key=lambda r: (r["val_robust_acc"], -r["val_worst_loss"], r["epoch"]))
