"""Subcommands of ``fastaug`` beyond the figures: each module exposes ``add_parser(subparsers)``.

``train`` (one run), ``compare`` (several methods, one table), ``subsample`` (budgeted augmentation:
which points to augment, the data-subsampling seed), ``toy2d`` (the influence loop's 2-D toy). Loops
with their own experiments add their module here and to :data:`COMMANDS`.
"""
COMMANDS = ("train", "compare", "subsample", "toy2d", "patch")
