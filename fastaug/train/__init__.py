"""Training: one loop primitive, one engine (:class:`Trainer`), one pipeline driver, one module per method.

* ``loop/``: the primitive every training loop stands on (``Loop``, ``Checkpointer``, ``Meters``,
  ``optimizer_step``, and beside the checkpointer the artifact format ``save_artifact`` /
  ``load_artifact``): resumable steps, one resume policy, weights-only atomic checkpoints, meters,
  bar, metrics;
* ``engine.py``: the classifier's epochs on the loop, evaluation, torchrun/DDP, metrics, outputs
  (``args.json``, ``metrics.jsonl``, ``checkpoint.pt``, ``summary.json``, ``curves.png``);
* ``pipeline.py``: multi-stage methods as lists of resumable ``Stage`` objects whose results
  (``StageResult``: artifacts, metrics, seconds) are handed to the stages that need them;
* ``method.py``: the :class:`Method` contract a training method implements (``augment``, ``loss``,
  hooks, state) and the :class:`TrainBatch` it trains on;
* ``args.py``: ``fastaug train``'s options and per-dataset defaults; ``options.py``: typed method
  options; ``registry.py``: ``--augment`` names -> methods; ``optim.py``, ``checkpoint.py``,
  ``distributed.py``, ``rng.py``, ``figures.py``;
* methods, one module or package each, never importing each other: ``policy_methods.py`` (none,
  standard, autoaugment, randaugment, trivialaugment), ``uncertainty.py`` (uncertainty-based
  sampling), ``adversarial/`` (Adversarial AutoAugment and its fixed/random ablation), ``tanda/``
  (TANDA), ``influence_loop/`` (influence-driven learned augmentation), ``patching/`` (model patching).

The experiments that are not ``--augment`` methods (data subsampling, the 2-D toy, the influence
histogram, the paper tables) live in :mod:`fastaug.experiments`, on this layer's loop primitive.

The engine as a library (docs/design.md, "How to add a method")::

    from fastaug.train import Method, Trainer, default_args

    class MyMethod(Method):
        def loss(self, model, batch):              # batch: TrainBatch (x float, y, extras...)
            ...
            return loss, {"losses": per_sample.detach(), "logits": logits.detach()}

    Trainer(default_args(epochs=2, output_dir="runs/mine"), method=MyMethod).fit()
"""
from ..artifacts import Artifact, ArtifactError, load_artifact, save_artifact
from .args import build_parser, default_args, parse_args, replace_args, resolve_defaults
from .engine import ClassifierStage, Trainer, load_data, pipeline_inputs, train
from .loop import Loop, optimizer_step
from .method import Method, MissingInput, TrainBatch, standard_augment, to_float
from .options import Options, option
from .pipeline import Pipeline, Stage, StageError, StageResult

__all__ = ["Trainer", "train", "load_data", "Method", "TrainBatch", "MissingInput", "to_float", "standard_augment",
           "Options", "option", "Pipeline", "Stage", "StageResult", "StageError", "ClassifierStage",
           "pipeline_inputs", "Loop", "optimizer_step", "save_artifact", "load_artifact", "Artifact",
           "ArtifactError", "build_parser", "parse_args", "default_args", "resolve_defaults", "replace_args"]
