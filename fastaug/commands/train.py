"""Train a classifier with an on-device augmentation method (one run: one process, or one rank under
torchrun). ``--augment X --help`` lists the common options and X's own. Examples:

  python -m fastaug train --augment randaugment --epochs 10
  python -m fastaug train --dataset cifar10 --data-dir ~/data --model wrn28_10 --augment uncertainty
  torchrun --nproc_per_node 2 -m fastaug train --augment standard
  python -m fastaug train --output-dir runs/x --resume                  # continue a run (its args.json)
  python -m fastaug train --config runs/x/args.json --output-dir runs/y # run x again (flags override)
"""
from . import CommandParser, is_main_process

__all__ = ["HELP", "add_arguments", "add_arguments_for", "run", "prepare", "load_run_data"]

HELP = "train a classifier with an augmentation method (--augment)"
#: ``--output-dir D --resume`` (no ``--config``) takes D/args.json as the config (:mod:`fastaug.cli`)
RESUME_FROM_ARGS_JSON = True


def add_arguments(parser):
    """Every method's options (``fastaug --help`` and library use)."""
    from ..train.args import build_parser

    build_parser(parser)


def add_arguments_for(parser, argv, config):
    """The common options and those of the ``--augment`` method that ``argv`` (or else its ``--config``
    values, ``config``) asks for; the config's values become defaults in :func:`fastaug.cli.build_parser`."""
    from ..train import registry
    from ..train.args import build_parser

    pre = CommandParser(prog="fastaug train", add_help=False)
    pre.add_argument("--augment")
    known, _ = pre.parse_known_args(argv[1:])
    augment = known.augment or config.get("augment") or "standard"
    if augment not in registry.names():
        augment = None  # let argparse name the valid choices
    build_parser(parser, methods=None if augment is None else [augment])


def prepare(args):
    """Checks that need no data: the device and every common option (before any data is read, so a bad
    value is named by its flag, not by the data loader)."""
    from ..train.args import check_device, resolve_defaults

    check_device(args.device)
    resolved = resolve_defaults(args)  # only checks: the run resolves its own copy once the image size is known
    if args.resume:
        _check_run_to_resume(resolved.output_dir)
    return args


def _check_run_to_resume(folder):
    """Refuse ``--resume`` on a folder where no run ever started (every run writes its ``args.json`` before
    its first step): a mistyped ``--output-dir`` would otherwise start a run of the defaults there (30
    epochs on every digit) instead of continuing the one meant."""
    import os

    if not any(os.path.isfile(os.path.join(folder, name)) for name in ("args.json", "checkpoint.pt")):
        where = "does not exist" if not os.path.isdir(folder) else "holds no run (no args.json)"
        raise FileNotFoundError(f"--resume: {folder} {where}, so there is no run to continue: check --output-dir, "
                                f"or leave out --resume to start a new run there")


def load_run_data(args):
    """(train, val, test) of the run, with ``--skip-unreadable`` handed to a folder dataset."""
    from ..data import FolderData
    from ..train.engine import load_data

    data = load_data(args)
    for split in data:
        if isinstance(split, FolderData):
            split.skip_unreadable = bool(getattr(args, "skip_unreadable", False))
    return data


def run(args):
    from ..train import distributed
    from ..train.args import resolve_defaults
    from ..train.engine import train

    prepare(args)
    try:
        data = load_run_data(args)
        # the folder the engine will resolve (and check every common option before any work)
        output_dir = resolve_defaults(args, image_side=data[0].image_size[0]).output_dir
        summary = train(args, data=data)
    finally:
        distributed.cleanup()
    if summary and is_main_process():
        print(f"final test accuracy {summary['final_test_acc']:.4f} (best {summary['best_test_acc']:.4f} at epoch "
              f"{summary['best_epoch']}), {summary['total_seconds']:.1f} s; outputs in {output_dir}")
    return 0
