"""fastaug's command line: ``python -m fastaug <command> ...`` (or ``fastaug <command>``).

``train`` trains a classifier with an augmentation method, ``compare`` compares methods,
``subsample`` and ``toy2d`` run the experiments that are not ``--augment`` methods, ``patch`` runs
model patching (subgroup translations, then patched training, CAMEL / CLAMP), ``show`` looks at
what a run learned (its ``augmentation.pt``); the other commands write figures (PNG) of what the
kernels do. ``--help`` on each lists its options.

Every command takes ``--config FILE`` (JSON or YAML: option name -> value; the ``args.json`` a command
writes in its output folder is one): its values become the command's defaults, so flags given on
the command line win, and a key no option has is refused naming it. ``--config args.json`` reruns
a command as it ran.
"""
import argparse
import importlib
import sys

from .commands import COMMANDS, command_name, is_main_process, user_errors

__all__ = ["build_parser", "main"]


def _module(name):
    return importlib.import_module(f".commands.{name}", __package__)


def _config_of(argv):
    """``(values, path)`` of the ``--config`` file named in ``argv`` (``({}, None)`` without one)."""
    from .train.args import load_config

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv[1:])
    if not known.config:
        return {}, None
    config = load_config(known.config)
    config.pop("config", None)
    return config, known.config


def build_parser(argv=None):
    """The parser of every command (each built by its module in ``fastaug/commands/``). ``argv`` lets
    a command shape its options by what was asked (``train --augment X --help`` shows X's only), and
    its ``--config`` file sets the chosen command's defaults."""
    from .train.args import apply_config

    parser = argparse.ArgumentParser(prog="python -m fastaug", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        mod = _module(name)
        p = sub.add_parser(command_name(name), help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           conflict_handler=getattr(mod, "CONFLICT_HANDLER", "error"))
        chosen = bool(argv) and argv[0] == command_name(name)
        config, path = _config_of(argv) if chosen else ({}, None)
        if getattr(mod, "add_arguments_for", None) and chosen:
            mod.add_arguments_for(p, argv, config)
        else:
            mod.add_arguments(p)
        p.add_argument("--config", default=None, metavar="FILE",
                       help="JSON or YAML file of option values (e.g. the args.json of a run); flags override it")
        if config:
            apply_config(p, config, path, command=f"fastaug {command_name(name)}")
        p.set_defaults(func=mod.run)
    return parser


def main(argv=None):
    """Run one command; known user errors print one sentence on stderr and return 2."""
    from .train.args import check_output_dir

    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv else ""
    try:
        values = vars(build_parser(argv).parse_args(argv))
        func = values.pop("func")
        for key in ("command", "config"):  # the dispatcher's own fields and the config file are no options
            values.pop(key, None)
        args = argparse.Namespace(**values)
        check_output_dir(getattr(args, "output_dir", None))
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
