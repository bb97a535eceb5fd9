"""``--augment`` names -> training-method classes, imported lazily (``module:Class``).

Each method lives in its own module of :mod:`fastaug.train`; methods never import each other. To add
one, write ``fastaug/train/<method>.py`` with a :class:`~fastaug.train.method.Method` subclass whose
``Options`` is a dataclass of its options (:mod:`fastaug.train.options`), and add its name here.
"""
import importlib

__all__ = ["names", "method_class", "add_method_arguments", "method_of_option", "METHODS"]

METHODS = {
    "none": "fastaug.train.policy_methods:NoAugment",
    "standard": "fastaug.train.policy_methods:StandardAugmentMethod",
    "autoaugment": "fastaug.train.policy_methods:AutoAugmentMethod",
    "randaugment": "fastaug.train.policy_methods:RandAugmentMethod",
    "trivialaugment": "fastaug.train.policy_methods:TrivialAugmentMethod",
    "uncertainty": "fastaug.train.uncertainty:UncertaintySampling",
    "adversarial": "fastaug.train.adversarial:AdversarialAutoAugment",
    "fixed": "fastaug.train.adversarial:FixedInstances",
    "random": "fastaug.train.adversarial:RandomPolicies",
    "tanda": "fastaug.train.tanda:Tanda",
    "influence": "fastaug.train.influence_loop:InfluenceAugment",
}


def names():
    return tuple(METHODS)


def method_class(name):
    """The Method subclass behind ``--augment name``."""
    if name not in METHODS:
        raise ValueError(f"unknown --augment {name!r}; choose one of {', '.join(METHODS)}")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def add_method_arguments(parser, methods=None):
    """Add the options of ``methods`` (``--augment`` names; default: every method), once per ``Options``
    class (methods that share one, as the three of Adversarial AutoAugment, share its flags), in a
    group titled by their names: one flag per field (see :mod:`fastaug.train.options`)."""
    seen = {}
    for name in METHODS:
        cls = method_class(name)
        seen.setdefault(cls.Options or cls, []).append(name)
    wanted = set(METHODS if methods is None else methods)
    for key, aliases in seen.items():
        if not wanted.intersection(aliases):
            continue
        before = len(parser._actions)
        group = parser.add_argument_group(f"--augment {' / '.join(aliases)}")
        if method_class(aliases[0]).Options is not None:
            key.add_to_parser(group)
        if len(parser._actions) == before:  # no options: drop the empty group from --help
            parser._action_groups.remove(group)


def method_of_option(dest):
    """The ``--augment`` names whose options include ``dest`` (empty when none has it)."""
    import argparse

    out = []
    for name in METHODS:
        p = argparse.ArgumentParser(add_help=False)
        add_method_arguments(p, [name])
        if any(a.dest == dest for a in p._actions):
            out.append(name)
    return out
