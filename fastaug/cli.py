"""fastaug's command line: ``python -m fastaug <command> ...`` (or ``fastaug <command>``).

``train`` trains a classifier with an augmentation method, ``compare`` compares methods,
``subsample`` and ``toy2d`` run the experiments that are not ``--augment`` methods, ``patch`` runs
model patching (subgroup translations, then patched training, CAMEL / CLAMP), ``show`` looks at
what a run learned (its ``augmentation.pt``); the other commands write figures (PNG) of what the
kernels do. ``--help`` on each lists its options.

Every command takes ``--config FILE`` (JSON or YAML: option name -> value; the ``args.json`` a command
writes in its output folder is one): its values become the command's defaults, so flags given on
the command line win, and a key no option has is refused naming it. ``--config args.json`` reruns
a command as it ran; ``train --output-dir D --resume`` without ``--config`` takes ``D/args.json`` as
its config, so the run continues with its own arguments (flags given must still match them).

A mistake on the command line, argparse's included, is one line on stderr, ``fastaug <command>:
error: <sentence>`` (``fastaug: error: ...`` before a command is chosen), and exit status 2.
"""
import argparse
import importlib
import os
import sys

from .commands import COMMANDS, CommandParser, UsageError, command_name, is_main_process, user_errors

__all__ = ["build_parser", "main"]


def _module(name):
    return importlib.import_module(f".commands.{name}", __package__)


def _config_of(argv, mod):
    """``(values, path)`` of the ``--config`` file named in ``argv`` (``({}, None)`` without one); for a
    command with ``RESUME_FROM_ARGS_JSON``, ``--resume`` without ``--config`` reads the ``args.json``
    of ``--output-dir`` when it holds one (the run's own arguments become the defaults)."""
    from .train.args import load_config

    pre = CommandParser(prog=f"fastaug {argv[0]}", add_help=False)
    pre.add_argument("--config")
    pre.add_argument("--output-dir")
    pre.add_argument("--resume", action="store_true")
    known, _ = pre.parse_known_args(argv[1:])
    path = known.config
    if path is None and known.resume and known.output_dir and getattr(mod, "RESUME_FROM_ARGS_JSON", False):
        run_args = os.path.join(os.path.expanduser(known.output_dir), "args.json")
        path = run_args if os.path.isfile(run_args) else None
    if not path:
        return {}, None
    config = load_config(path)
    config.pop("config", None)
    return config, path


def build_parser(argv=None):
    """The parser of every command (each built by its module in ``fastaug/commands/``). ``argv`` lets
    a command shape its options by what was asked (``train --augment X --help`` shows X's only), and
    its ``--config`` file sets the chosen command's defaults."""
    from .train.args import apply_config

    parser = CommandParser(prog="fastaug", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        mod = _module(name)
        p = sub.add_parser(command_name(name), help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           conflict_handler=getattr(mod, "CONFLICT_HANDLER", "error"))
        chosen = bool(argv) and argv[0] == command_name(name)
        config, path = _config_of(argv, mod) if chosen else ({}, None)
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
    """Run one command; known user errors (argparse's too) print one sentence on stderr and return 2."""
    from .train.args import check_output_dir

    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv else ""
    try:
        namespace, extra = build_parser(argv).parse_known_args(argv)
        values = vars(namespace)
        if extra:
            raise UsageError(_unrecognized(extra, values.get("augment")))
        func = values.pop("func")
        for key in ("command", "config"):  # the dispatcher's own fields and the config file are no options
            values.pop(key, None)
        args = argparse.Namespace(**values)
        check_output_dir(getattr(args, "output_dir", None))
        _check_output_dir_owner(command, getattr(args, "output_dir", None))
        return func(args) or 0
    except user_errors() as err:
        if is_main_process():
            prog = getattr(err, "prog", None) or f"fastaug {command}"
            print(f"{prog}: error: {_sentence(err)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`fastaug show RUN | head`): stop quietly, as cat does
        _silence_stdout()
        return 1


#: The options whose presence in an ``args.json`` tells which command wrote the folder (first match wins:
#: compare's holds train's options and its ``methods``).
_WRITERS = (("patch", ("gan_steps",)), ("subsample", ("policies",)), ("toy2d", ("val_shift",)),
            ("compare", ("augment", "methods")), ("train", ("augment",)))


def _check_output_dir_owner(command, output_dir):
    """Refuse, in one sentence, an ``--output-dir`` holding the outputs of another command (its ``args.json``
    says which): writing there would overwrite that run's args.json, summary.json, curves.png or
    augmentation.pt, which share their names between commands."""
    if not output_dir:
        return
    import json

    path = os.path.join(os.path.expanduser(output_dir), "args.json")
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError):  # no args.json (or not one of ours): nothing to protect
        return
    if not isinstance(saved, dict):
        return
    writer = next((name for name, keys in _WRITERS if all(k in saved for k in keys)), None)
    if writer is not None and writer != command:
        raise UsageError(f"--output-dir {output_dir} holds the outputs of `fastaug {writer}` (its args.json), which "
                         f"`fastaug {command}` would overwrite: choose another --output-dir")


def _silence_stdout():
    """Point stdout at /dev/null, so that the interpreter's flush at exit does not raise BrokenPipeError
    again (the recipe of Python's signal module documentation)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (e.g. captured): nothing is flushed to a pipe
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _unrecognized(extra, augment):
    """The sentence for arguments no option of the command took: a flag of another ``--augment``
    method than ``augment`` (the chosen one; None for a command without methods) is named as such."""
    if augment is not None:
        from .train import registry

        every = argparse.ArgumentParser(add_help=False)
        registry.add_method_arguments(every)
        for token in extra:
            action = every._option_string_actions.get(token.split("=", 1)[0])
            if action is not None:
                owners = " / ".join(registry.method_of_option(action.dest))
                return f"{token.split('=', 1)[0]} is an option of --augment {owners} only, not of --augment {augment}"
    return f"unrecognized arguments: {' '.join(extra)}"


def _sentence(err):
    """The message of ``err`` on one line (a FileNotFoundError from the OS carries its path apart)."""
    if isinstance(err, OSError) and err.filename:
        return f"{err.strerror or 'cannot open'}: {err.filename}"
    return " ".join(str(err).split()) if str(err) else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
