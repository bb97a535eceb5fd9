"""``fastaug train``: one training run (single process, or one rank under ``torchrun``)."""
import argparse
import sys

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    from ..train.args import build_parser

    p = subparsers.add_parser("train", help="train a classifier with an augmentation method (--augment)",
                              description="Train a classifier with an on-device augmentation method. Examples:\n"
                              "  python -m fastaug train --augment randaugment --epochs 10\n"
                              "  python -m fastaug train --dataset cifar10 --data-dir ~/data --model wrn28_10 "
                              "--augment uncertainty\n"
                              "  torchrun --nproc_per_node 2 -m fastaug train --augment standard\n"
                              "  python -m fastaug train --output-dir runs/x --resume   # continue a run",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    build_parser(p)
    p.set_defaults(func=run)
    return p


def run(args):
    from ..train import distributed
    from ..train.checkpoint import CheckpointError
    from ..train.engine import train

    args = _strip(args)
    try:
        summary = train(args)
    except (ValueError, FileNotFoundError, CheckpointError) as err:
        print(f"fastaug train: error: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.cleanup()
    if summary:
        print(f"final test accuracy {summary['final_test_acc']:.4f} (best {summary['best_test_acc']:.4f} at epoch "
              f"{summary['best_epoch']}), {summary['total_seconds']:.1f} s; outputs in {args.output_dir}")
    return 0


def _strip(args):
    """The parsed namespace without the dispatcher's own fields."""
    for key in ("func", "command"):
        if hasattr(args, key):
            delattr(args, key)
    return args
