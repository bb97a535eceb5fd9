"""Training: one loop primitive, one engine (:class:`Trainer`), one pipeline driver, one module per method.

* ``loop/``: the primitive every training loop stands on (``Loop``, ``Checkpointer``, ``Meters``,
  ``optimizer_step``): resumable steps, weights-only atomic checkpoints, meters, bar, metrics;
* ``engine.py``: the classifier's epochs on the loop, evaluation, torchrun/DDP, metrics, outputs
  (``args.json``, ``metrics.jsonl``, ``checkpoint.pt``, ``summary.json``, ``curves.png``);
* ``pipeline.py``: multi-stage methods as lists of resumable ``Stage`` objects (TANDA, the influence loop);
* ``method.py``: the :class:`Method` contract a training method implements;
* ``args.py``: ``fastaug train``'s options and per-dataset defaults; ``registry.py``: ``--augment``
  names -> methods; ``optim.py``, ``checkpoint.py``, ``distributed.py``, ``rng.py``, ``figures.py``;
* methods, one module or package each, never importing each other: ``policy_methods.py`` (none,
  standard, autoaugment, randaugment, trivialaugment), ``uncertainty.py`` (uncertainty-based
  sampling), ``adversarial/`` (Adversarial AutoAugment and its fixed/random ablation), ``tanda/``
  (TANDA), ``influence_loop/`` (influence-driven learned augmentation).

The experiments that are not ``--augment`` methods (data subsampling, the 2-D toy, the influence
histogram) live in :mod:`fastaug.experiments`, on this layer's loop primitive.
"""
from .args import build_parser, default_args, parse_args, resolve_defaults
from .engine import Trainer, load_data, train
from .method import Method, TrainBatch, to_float

__all__ = ["Trainer", "train", "load_data", "Method", "TrainBatch", "to_float", "build_parser", "parse_args",
           "default_args", "resolve_defaults"]
