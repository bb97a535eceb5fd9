"""Subcommands of ``fastaug`` beyond the figures: each module exposes ``add_parser(subparsers)``.

``train`` (one run), ``compare`` (several methods, one table), ``subsample`` (budgeted augmentation:
which points to augment, the data-subsampling seed). Loops with their own experiments add
their module here and to :data:`COMMANDS`.
"""
COMMANDS = ("train", "compare", "subsample")
