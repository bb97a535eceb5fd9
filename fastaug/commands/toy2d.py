"""The influence-augmentation paper's 2-D toy (ICLR section 5.1, Figure 3; docs/influence_loop.md).

Learns one translation per training point of a two-moons dataset from the influence on a validation
set moved by ``--val-shift DX DY``, retrains the classifier with the augmented points, and writes
``summary.json`` (``mean_translation``, validation loss before/after retraining, a random-direction
control), ``toy2d.png`` (the paper's four columns) and ``args.json`` (``--config args.json`` reruns it)
in ``--output-dir``. Examples::

    python -m fastaug toy2d --val-shift 0 0 --output-dir runs/toy2d-same        # Figure 3, first row
    python -m fastaug toy2d --val-shift 0 -0.5 --output-dir runs/toy2d-down     # second row
"""
import json
import math
import os

from ..train.checkpoint import atomic_write_text
from ..train.options import require
from . import write_args

__all__ = ["HELP", "add_arguments", "run"]

HELP = "the influence-augmentation paper's 2-D toy: influence-learned translations (Figure 3)"


def add_arguments(p):
    from ..experiments.toy2d import ToyConfig

    d = ToyConfig()
    p.add_argument("--val-shift", type=float, nargs=2, default=list(d.val_shift), metavar=("DX", "DY"),
                   help="move the validation set by (DX, DY) (default: 0 0, the training distribution)")
    p.add_argument("--output-dir", default="runs/toy2d", help="folder of summary.json and toy2d.png")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of the data and the MLP ({d.seed})")
    p.add_argument("--n-train", type=int, default=d.n_train, help=f"training points ({d.n_train})")
    p.add_argument("--n-val", type=int, default=d.n_val, help=f"validation points ({d.n_val})")
    p.add_argument("--noise", type=float, default=d.noise, help=f"std of the moons' noise ({d.noise})")
    p.add_argument("--max-shift", type=float, default=d.max_shift,
                   help=f"bound on each translation's coordinates ({d.max_shift})")
    p.add_argument("--aug-steps", type=int, default=d.aug_steps,
                   help=f"gradient steps on the translations ({d.aug_steps})")
    p.add_argument("--train-steps", type=int, default=d.train_steps,
                   help=f"full-batch Adam steps of the MLP ({d.train_steps})")


def _check(args):
    require([(all(math.isfinite(v) for v in args.val_shift),
               f"--val-shift must be two finite numbers, got {' '.join(map(str, args.val_shift))}"),
              (args.n_train >= 4, f"--n-train must be >= 4, got {args.n_train}"),
              (args.n_val >= 2, f"--n-val must be >= 2, got {args.n_val}"),
              (math.isfinite(args.noise) and args.noise >= 0, f"--noise must be >= 0, got {args.noise}"),
              (math.isfinite(args.max_shift) and args.max_shift > 0, f"--max-shift must be > 0, got {args.max_shift}"),
              (args.aug_steps >= 1 and args.train_steps >= 1, "--aug-steps and --train-steps must be >= 1")])


def run(args):
    from ..train.influence_loop.figures import toy2d_figure
    from ..experiments.toy2d import run_toy2d

    _check(args)
    summary, arrays = run_toy2d(val_shift=tuple(args.val_shift), seed=args.seed, n_train=args.n_train,
                                n_val=args.n_val, noise=args.noise, max_shift=args.max_shift,
                                aug_steps=args.aug_steps, train_steps=args.train_steps,
                                folder=os.path.join(args.output_dir, "loops"))  # a rerun continues its loops
    atomic_write_text(json.dumps(summary, indent=2) + "\n", os.path.join(args.output_dir, "summary.json"))
    path = toy2d_figure(os.path.join(args.output_dir, "toy2d.png"), arrays, summary)
    write_args(args, args.output_dir)
    dx, dy = summary["mean_translation"]
    print(f"mean translation ({dx:+.4f}, {dy:+.4f}); validation loss {summary['val_loss_before']:.4f} -> "
          f"{summary['val_loss_after']:.4f} after retraining (random directions: "
          f"{summary['val_loss_random_directions']:.4f}); wrote {path}")
    return 0
