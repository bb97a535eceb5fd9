"""``fastaug``'s commands, one module each, all defined the same way.

A command module exposes

* ``HELP``: one line for ``fastaug --help``; its docstring is the command's ``--help`` description;
* ``add_arguments(parser)``: its options on the argparse parser :mod:`fastaug.cli` made for it;
* ``run(args) -> int``: does the work and returns the exit status (0); a command that writes a run
  folder (``--output-dir``) writes its arguments there as ``args.json`` (:func:`write_args`), so
  ``--config args.json`` reruns it;
* optionally ``add_arguments_for(parser, argv, config)`` (options shaped by the command line or its
  ``--config`` values, e.g. ``train --augment X``), ``CONFLICT_HANDLER = "resolve"`` (to redefine
  an option it borrows) and ``RESUME_FROM_ARGS_JSON = True`` (``--output-dir D --resume`` without
  ``--config`` reads ``D/args.json`` as the config: the run continues with its own arguments).

:mod:`fastaug.cli` gives every command ``--config FILE`` (its values become the defaults, flags win,
unknown keys are refused by name) and refuses an ``--output-dir`` that names a file.

Errors a user can cause (bad option values, a missing folder, a foreign checkpoint) are raised as
:func:`user_errors` with a one-sentence message; :func:`fastaug.cli.main` prints it as
``fastaug <command>: error: <sentence>`` (rank 0 only under torchrun) and exits with status 2.
argparse's own mistakes (an invalid choice, a value of the wrong type, an unknown flag) take the same
path: every parser is a :class:`CommandParser`, whose errors are :class:`UsageError` instead of the
usage text and ``sys.exit``. Command names are the module names with ``-`` for ``_``.
"""
import argparse

__all__ = ["COMMANDS", "UsageError", "CommandParser", "user_errors", "command_name", "is_main_process",
           "write_args"]

#: The modules of ``fastaug/commands/``, in the order ``fastaug --help`` lists them.
COMMANDS = ("train", "compare", "subsample", "toy2d", "ops_grid", "transform_grid", "influence_hist", "patch", "show")


class UsageError(ValueError):
    """A command was asked for something it cannot do (a one-sentence message, no traceback).

    ``prog``: who reports it (``"fastaug train"``, or ``"fastaug"`` for a mistake before the command),
    when the raiser knows better than the command line's first word (None otherwise)."""

    def __init__(self, message, prog=None):
        super().__init__(message)
        self.prog = prog


class CommandParser(argparse.ArgumentParser):
    """argparse's parser whose mistakes (an invalid choice or type, a missing value, an unknown flag)
    raise :class:`UsageError` naming its ``prog``, so :func:`fastaug.cli.main` prints them as one line
    like every other error (no usage text; ``--help`` shows it)."""

    def error(self, message):
        raise UsageError(message, prog=self.prog)


def user_errors():
    """The exception types a user's mistake raises (each with a one-sentence message)."""
    from ..train.checkpoint import CheckpointError

    # OS errors a user causes (a path that is a folder, a folder one cannot write to) are named too
    return (ValueError, CheckpointError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def command_name(module):
    return module.rsplit(".", 1)[-1].replace("_", "-")


def is_main_process():
    """True outside torchrun and on its rank 0: the one process that prints results and errors."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def write_args(args, folder):
    """Write the command's arguments to ``folder/args.json`` (atomically, rank 0 only): what
    ``--config`` reads back to rerun the command."""
    from ..train.args import write_args_json

    if is_main_process():
        write_args_json(args, folder)
