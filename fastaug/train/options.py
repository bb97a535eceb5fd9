"""Typed options: a method's options as a dataclass, its command-line flags and its checks in one place.

A method declares its options once::

    @dataclasses.dataclass
    class RandAugmentOptions(Options):
        ra_num_ops: int = option(2, "RandAugment N: ops per image", check=at_least(1))

and sets ``Options = RandAugmentOptions`` on its :class:`~fastaug.train.method.Method` subclass.
:func:`~fastaug.train.registry.add_method_arguments` turns the fields into ``fastaug train`` flags
(``--ra-num-ops``, type and default from the field), and the method builds its validated object
with ``RandAugmentOptions.from_args(args)``. A failed check is one sentence naming the flag, the
rule and the value (``--ra-num-ops must be >= 1, got 0``); :func:`require` is the one loop that
turns ``(ok, message)`` pairs into that error, for checks that involve several options.

A multi-stage method tags each field with the stage whose result it decides (``option(..., stage=2)``;
0: no result, e.g. a logging cadence), so each stage's options come from the dataclass itself
(:meth:`Options.of_stage`) instead of a list of names kept beside it.
"""
import argparse
import dataclasses
import math
import typing

__all__ = ["Options", "option", "require", "at_least", "above", "within", "flag_of"]


def option(default, help, *, flags=None, choices=None, check=None, metavar=None, nargs=None, stage=None):
    """A dataclass field that is also a command-line option.

    Args:
        default: its default (also the flag's); a field typed ``Optional[X]`` may default to None
            (its check then applies to given values only).
        help: one line for ``--help`` (the default is appended).
        flags: the flags, e.g. ``("--instances", "-M")`` (default: ``--<name-with-dashes>``).
        choices: the allowed values, if a closed set.
        check: ``(predicate, rule)`` from :func:`at_least`, :func:`above`, :func:`within`.
        nargs: argparse's ``nargs`` for a list of values (the field is typed by its items and its
            default is a tuple).
        stage: in a multi-stage method, the stage whose result the option decides (0: none).
    """
    return dataclasses.field(default=default, metadata=dict(help=help, flags=flags, choices=choices, check=check,
                                                            metavar=metavar, nargs=nargs, stage=stage))


def _finite(v):
    return not isinstance(v, float) or math.isfinite(v)


def at_least(lo):
    return (lambda v: _finite(v) and v >= lo, f"must be >= {lo}")


def above(lo):
    return (lambda v: _finite(v) and v > lo, f"must be > {lo}")


def within(lo, hi, *, open_hi=False):
    rule = f"must be in [{lo}, {hi})" if open_hi else f"must be in [{lo}, {hi}]"
    return (lambda v: _finite(v) and lo <= v and (v < hi if open_hi else v <= hi), rule)


def require(checks):
    """Raise ValueError with the message of the first ``(ok, message)`` pair whose ``ok`` is false."""
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def _value_type(annotation):
    """The type of one value of a field: ``Optional[X]`` and ``Tuple[X, ...]`` -> X; string annotations resolved."""
    if typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) in (tuple, list):  # Tuple[int, ...]: a field with nargs
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, str):
        return {"int": int, "float": float, "bool": bool}.get(annotation, str)
    return annotation


def flag_of(field):
    flags = field.metadata.get("flags")
    return flags[0] if flags else "--" + field.name.replace("_", "-")


class Options:
    """Base of the typed option dataclasses (see the module docstring)."""

    @classmethod
    def add_to_parser(cls, group):
        """One flag per field on ``group`` (an argparse parser or argument group)."""
        for f in dataclasses.fields(cls):
            m = f.metadata
            kw = dict(dest=f.name, default=f.default, help=f"{m['help']} (default: {f.default})")
            value_type = _value_type(f.type)
            if value_type is bool:
                kw["action"] = argparse.BooleanOptionalAction
            else:
                kw.update(type=value_type if isinstance(value_type, type) else str, choices=m.get("choices"),
                          metavar=m.get("metavar"))
                if m.get("nargs") is not None:  # a list, as parsed values and args.json hold it
                    kw.update(nargs=m["nargs"], default=list(f.default))
            group.add_argument(*(m.get("flags") or (flag_of(f),)), **kw)

    @classmethod
    def from_args(cls, args):
        """The options of parsed ``fastaug train`` arguments (a Namespace), validated; a field the
        namespace lacks (a namespace built for another method) takes its default."""
        opts = cls(**{f.name: getattr(args, f.name, f.default) for f in dataclasses.fields(cls)})
        opts.validate()
        return opts

    def validate(self):
        """Check every field's rule and :meth:`extra_checks`; one-sentence ValueError on the first failure."""
        checks = []
        for f in dataclasses.fields(self):
            value, m = getattr(self, f.name), f.metadata
            if value is None and f.default is None:  # unset Optional: the method picks (e.g. by dataset)
                continue
            if m.get("choices") is not None:
                allowed = ", ".join(map(str, m["choices"]))
                checks.append((value in m["choices"], f"{flag_of(f)} must be one of {allowed}, got {value!r}"))
            if m.get("check") is not None:
                predicate, rule = m["check"]
                checks.append((predicate(value), f"{flag_of(f)} {rule}, got {value!r}"))
        require(checks + list(self.extra_checks()))
        return self

    def extra_checks(self):
        """``(ok, message)`` pairs of rules that involve several options (none by default)."""
        return []

    @classmethod
    def stage_of(cls):
        """{field name: the stage it decides (``option(stage=)``; 0 for none)}."""
        return {f.name: f.metadata.get("stage") or 0 for f in dataclasses.fields(cls)}

    def of_stage(self, *stages):
        """{name: value} of the fields that decide one of ``stages`` (JSON-able: tuples as lists)."""
        wanted = set(stages)
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self) if (f.metadata.get("stage") or 0) in wanted}
