"""Typed method options: flags built from the dataclass, one-sentence checks naming flag, rule and value."""
import argparse
import dataclasses

import pytest

from fastaug.train.adversarial.method import AdversarialOptions
from fastaug.train.influence_loop.options import OPTION_STAGE, NEUTRAL_OPTIONS, InfluenceOptions, check_options
from fastaug.train.options import Options, at_least, option, require, within
from fastaug.train.policy_methods import RandAugmentOptions
from fastaug.train.tanda.method import TandaOptions
from fastaug.train.uncertainty import UncertaintyOptions


@dataclasses.dataclass
class Toy(Options):
    steps: int = option(3, "steps", check=at_least(1))
    rate: float = option(0.5, "a rate", check=within(0, 1, open_hi=True))
    mode: str = option("a", "a mode", choices=("a", "b"))


def _parse(cls, argv):
    p = argparse.ArgumentParser()
    cls.add_to_parser(p)
    return cls.from_args(p.parse_args(argv))


def test_flags_types_and_defaults_come_from_the_fields():
    assert _parse(Toy, []) == Toy()
    assert _parse(Toy, ["--steps", "7", "--rate", "0.25", "--mode", "b"]) == Toy(7, 0.25, "b")
    assert _parse(AdversarialOptions, ["-M", "3"]).instances == 3  # extra flags of a field


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--rate", "1"], "--rate must be in [0, 1), got 1.0"),
    (["--rate", "nan"], "--rate must be in [0, 1), got nan"),
])
def test_a_failed_check_is_one_sentence(argv, message):
    with pytest.raises(ValueError) as err:
        _parse(Toy, argv)
    assert str(err.value) == message


def test_a_value_outside_the_choices_is_refused_without_argparse():
    with pytest.raises(ValueError, match="--mode must be one of a, b, got 'c'"):
        Toy(mode="c").validate()


def test_rules_across_options_and_the_methods_defaults_are_valid():
    with pytest.raises(ValueError, match="--keep must be at most --candidates"):
        UncertaintyOptions(candidates=2, keep=3).validate()
    for cls in (AdversarialOptions, RandAugmentOptions, UncertaintyOptions, TandaOptions, InfluenceOptions):
        cls().validate()
    with pytest.raises(ValueError, match="--ra-magnitude must be in \\[0, 30\\], got 31"):
        RandAugmentOptions(ra_magnitude=31).validate()


def test_require_raises_the_first_failed_message_only():
    require([(True, "never")])
    with pytest.raises(ValueError, match="^second$"):
        require([(True, "first"), (False, "second"), (False, "third")])


def test_optional_and_list_fields_of_the_influence_options():
    assert _parse(InfluenceOptions, []).stages == [1, 2, 3, 4, 5]  # a list, as args.json holds it
    got = _parse(InfluenceOptions, ["--stages", "1", "2", "--appearance", "--gan-critic-steps", "3"])
    assert (got.stages, got.appearance, got.gan_critic_steps) == ([1, 2], True, 3)
    assert _parse(InfluenceOptions, ["--no-appearance"]).appearance is False
    assert _parse(InfluenceOptions, []).gan_critic_steps is None  # unset: not checked against >= 1
    with pytest.raises(ValueError, match=r"^--gan-critic-steps must be >= 1, got 0$"):
        _parse(InfluenceOptions, ["--gan-critic-steps", "0"])
    with pytest.raises(ValueError, match=r"^--stages must be among \[1, 2, 3, 4, 5\], got \[1, 6\]$"):
        _parse(InfluenceOptions, ["--stages", "1", "6"])
    with pytest.raises(ValueError, match="needs a held-out validation split"):
        check_options(argparse.Namespace(val_size=0, **dataclasses.asdict(InfluenceOptions())))
    # every option says which stage it changes (or that it changes none, stage 0): resume checks rely on it
    assert all(f.metadata["stage"] is not None for f in dataclasses.fields(InfluenceOptions))
    assert {f.name for f in dataclasses.fields(InfluenceOptions)} == set(OPTION_STAGE) | set(NEUTRAL_OPTIONS)
    assert OPTION_STAGE["gan_iters"] == 2 and OPTION_STAGE["learned_prob"] == 5 and "stages" in NEUTRAL_OPTIONS


def test_tanda_options_are_checked_in_one_sentence():
    with pytest.raises(ValueError, match=r"^--tanda-gamma must be in \[0, 1\], got 1.5$"):
        TandaOptions(tanda_gamma=1.5).validate()
    with pytest.raises(ValueError, match="^--tanda-discriminator must be one of "):
        TandaOptions(tanda_discriminator="vgg").validate()
