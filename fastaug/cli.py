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
import contextlib
import errno
import importlib
import os
import signal
import sys
import threading

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

    in_process = argv is not None  # called from Python, not as the `fastaug` program
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv else ""
    output_dir = None  # the parsed --output-dir (a flag or --config's), for the sentence of an interrupted run
    try:
        namespace, extra = build_parser(argv).parse_known_args(argv)
        values = vars(namespace)
        if extra:
            raise UsageError(_unrecognized(extra, values.get("augment")))
        func = values.pop("func")
        for key in ("command", "config"):  # the dispatcher's own fields and the config file are no options
            values.pop(key, None)
        args = argparse.Namespace(**values)
        output_dir = getattr(args, "output_dir", None)
        check_output_dir(output_dir)
        _check_output_dir_owner(command, output_dir)
        with _interrupts_as_exceptions():
            return func(args) or 0
    except user_errors() as err:
        if is_main_process():
            prog = getattr(err, "prog", None) or f"fastaug {command}"
            print(f"{prog}: error: {_sentence(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (kill, a scheduler): one line, no traceback
        return _interrupted(command, output_dir, err, in_process)
    except BrokenPipeError:  # the reader went away (`fastaug show RUN | head`): stop quietly, as cat does
        _silence_stdout()
        return 1
    except OSError as err:  # a full disk, a read-only or vanished folder: one sentence, not a traceback
        interrupt = _interrupt_behind(err)
        if interrupt is not None:
            return _interrupted(command, output_dir, interrupt, in_process)
        if err.errno not in _USER_ERRNOS:
            raise
        if is_main_process():
            print(f"fastaug {command}: error: {_os_sentence(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # an interrupt that a library turned into its own error
        interrupt = _interrupt_behind(err)
        if interrupt is None:
            raise
        return _interrupted(command, output_dir, interrupt, in_process)


def _interrupt_behind(err):
    """The KeyboardInterrupt (Ctrl-C, :class:`Terminated`) that caused ``err``, or None: Ctrl-C during the
    first import of a C extension (matplotlib's, for the first curves.png) surfaces as "ImportError:
    initialization failed" raised from it."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _interrupted(command, output_dir, err, in_process):
    """One line for an interrupted command; its exit status, 128 + the signal. A second Ctrl-C while this
    prints (or while the interpreter exits) must not add a traceback; a caller that ran main(argv) in its
    own process gets its handlers back."""
    previous = _ignore_interrupts()
    previous = getattr(err, "handlers", previous)  # (ignored already by the first interrupt's handler)
    signum = getattr(err, "signum", signal.SIGINT)
    if is_main_process():
        print(f"fastaug {command}: {_interrupted_sentence(command, output_dir, signum)}", file=sys.stderr)
    if in_process:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 + int(signum)


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


#: OS errors that the user's machine causes, not a bug: reported in one sentence (exit status 2).
_USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR,
                errno.EISDIR, errno.EEXIST}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is (as Ctrl-C raises KeyboardInterrupt), so that the command
    stops the same way: its files are closed, temporary files removed, the last checkpoint kept."""

    signum = signal.SIGTERM


@contextlib.contextmanager
def _interrupts_as_exceptions():
    """SIGTERM raises :class:`Terminated` while a command runs (Python's default would end the process
    without a word), and the first Ctrl-C or SIGTERM ignores both from then on: a second one while the
    command unwinds or the interpreter exits must do nothing (it could land on a thread of torch's while
    Python finalizes, and abort the process: "Fatal Python error: PyThreadState_Get"). In the main thread
    only, and only where the signal has its default action (Python's, for SIGINT); the exception carries
    the handlers there were (``handlers``), for a caller that runs commands in its own process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    interrupted = []

    def stop(exc_type):
        def handler(signum, frame):
            interrupted.append(signum)
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
            err = exc_type()
            err.handlers = previous
            raise err
        return handler

    if previous[signal.SIGTERM] is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, stop(Terminated))
    if previous[signal.SIGINT] is signal.default_int_handler:
        signal.signal(signal.SIGINT, stop(KeyboardInterrupt))
    try:
        yield
    finally:
        if not interrupted:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _ignore_interrupts():
    """Ignore SIGINT and SIGTERM from now on (main thread only); returns the handlers they had."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}


def _interrupted_sentence(command, out, signum):
    """What an interrupted command says: which signal, that the last checkpoint is kept, how to continue
    (``out``: the command's parsed --output-dir, or None)."""
    name = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name
    if command in ("train", "patch"):
        how = (f"`fastaug {command} --output-dir {out} --resume` continues it" if out else
               f"`fastaug {command} --output-dir <its output folder> --resume` continues it")
    else:
        how = "running the same command again continues it"
    return f"interrupted by {name}; what was saved is kept (the last checkpoint: at most --checkpoint-every " \
           f"steps or an epoch are lost): {how}"


def _os_sentence(err):
    """One sentence for an OS error a command met while reading or writing its files."""
    what = err.strerror or type(err).__name__
    where = f": {err.filename}" if err.filename else " (while writing the command's output folder)"
    hint = {errno.ENOSPC: "; free some space, then continue with --resume (the last checkpoint is kept)",
            errno.EDQUOT: "; free some space, then continue with --resume (the last checkpoint is kept)",
            errno.EROFS: "; choose an --output-dir you can write to (a run copied there continues with --resume)"
            }.get(err.errno, "")
    return f"{what}{where}{hint}"


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
