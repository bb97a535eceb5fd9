"""fastaug's command line: ``python -m fastaug <command> ...`` (or ``fastaug <command>``).

``train`` trains a classifier with an augmentation method, ``compare`` compares methods,
``subsample`` and ``toy2d`` run the experiments that are not ``--augment`` methods, ``patch`` runs
model patching (subgroup translations, then patched training, CAMEL / CLAMP), ``show`` looks at
what a run learned (its ``augmentation.pt``); the other commands write figures (PNG) of what the
kernels do. ``--help`` on each lists its options.
"""
import argparse
import importlib
import sys

from .commands import COMMANDS, command_name, is_main_process, user_errors

__all__ = ["build_parser", "main"]


def _module(name):
    return importlib.import_module(f".commands.{name}", __package__)


def build_parser(argv=None):
    """The parser of every command (each built by its module in ``fastaug/commands/``). ``argv`` lets
    a command shape its options by what was asked (``train --augment X --help`` shows X's only)."""
    parser = argparse.ArgumentParser(prog="python -m fastaug", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        mod = _module(name)
        p = sub.add_parser(command_name(name), help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           conflict_handler=getattr(mod, "CONFLICT_HANDLER", "error"))
        if getattr(mod, "add_arguments_for", None) and argv and argv[0] == command_name(name):
            mod.add_arguments_for(p, argv)
        else:
            mod.add_arguments(p)
        p.set_defaults(func=mod.run)
    return parser


def main(argv=None):
    """Run one command; known user errors print one sentence on stderr and return 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv else ""
    try:
        args = build_parser(argv).parse_args(argv)
        func = args.func
        for key in ("func", "command"):  # the dispatcher's own fields are not the command's options
            delattr(args, key)
        return func(args) or 0
    except user_errors() as err:
        if is_main_process():
            print(f"fastaug {command}: error: {_sentence(err)}", file=sys.stderr)
        return 2


def _sentence(err):
    """The message of ``err`` on one line (a FileNotFoundError from the OS carries its path apart)."""
    if isinstance(err, OSError) and err.filename:
        return f"{err.strerror or 'cannot open'}: {err.filename}"
    return " ".join(str(err).split()) if str(err) else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
