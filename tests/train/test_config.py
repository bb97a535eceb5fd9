"""``fastaug train --config FILE``: a run's args.json reproduces it, flags override the file, unknown
keys are refused in one sentence; ``--augment X --help`` lists X's options only."""
import json

import pytest
import torch

from _train_utils import cli, cli_args
from fastaug.cli import main
from fastaug.train import registry
from fastaug.train.args import apply_config, build_parser, load_config


def _weights(d):
    return torch.load(d / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]


@pytest.mark.slow
def test_args_json_as_config_reproduces_the_run_bit_identically(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    # a non-default choice of every kind: method option, schedule, a list option
    cli("train", *cli_args(a, augment="randaugment", epochs=2, train_size=96, ra_magnitude=13, sched="step",
                           decay_milestones=[1], seed=3))
    cli("train", "--config", a / "args.json", "--output-dir", b, "--no-progress")
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    args_a, args_b = json.loads((a / "args.json").read_text()), json.loads((b / "args.json").read_text())
    assert args_a.pop("output_dir") != args_b.pop("output_dir")
    assert args_a == args_b  # the same experiment, written the same way (no "config" key)
    # ... and it is the run's own data, not a default: another seed trains other weights
    c = tmp_path / "c"
    cli("train", "--config", a / "args.json", "--output-dir", c, "--seed", "4", "--no-progress")
    assert json.loads((c / "args.json").read_text())["seed"] == 4  # the flag overrides the file
    assert any(not torch.equal(wa[k], _weights(c)[k]) for k in wa)


def test_config_key_no_option_has_is_refused_naming_it(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"epochs": 1, "learning_rate": 0.1}))
    assert main(["train", "--config", str(cfg), "--output-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'learning_rate'" in err and "no option of fastaug train" in err
    # another method's option is named as such (at its default it is ignored: args.json of a library run)
    cfg.write_text(json.dumps({"augment": "randaugment", "instances": 4}))
    assert main(["train", "--config", str(cfg), "--output-dir", str(tmp_path / "r")]) == 2
    assert "'instances' is an option of --augment adversarial / fixed / random only" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    p = build_parser(methods=["randaugment"])
    apply_config(p, {"augment": "randaugment", "instances": 8, "ra_magnitude": 5}, cfg)
    assert p.parse_args([]).ra_magnitude == 5 and not hasattr(p.parse_args([]), "instances")


def test_config_values_are_checked_against_choices_and_types(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"opt": "lion"}))
    p = build_parser(methods=["standard"])
    with pytest.raises(ValueError, match="opt must be one of sgd, adam, got 'lion'"):
        apply_config(p, load_config(cfg), cfg)
    for bad, message in (({"epochs": "two"}, "epochs must be an integer, got 'two'"),
                         ({"epochs": 2.5}, "epochs must be an integer, got 2.5"),
                         ({"lr": True}, "lr must be a number, got True"),
                         ({"opt_betas": [0.9, "0.99"]}, r"opt_betas must be a number, got \[0.9, '0.99'\]")):
        cfg.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=f"^config {cfg}: {message}$"):
            apply_config(build_parser(methods=["standard"]), load_config(cfg), cfg)
    p = build_parser(methods=["standard"])
    apply_config(p, {"epochs": "3", "lr": 1, "opt_betas": [0.9, 0.99]}, cfg)  # argparse reads a string "3"
    assert (p.parse_args([]).epochs, p.parse_args([]).lr, p.parse_args([]).opt_betas) == (3, 1, [0.9, 0.99])
    cfg.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must map option names to values"):
        load_config(cfg)
    cfg.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(cfg)


def test_yaml_config_sets_defaults_and_flags_win(tmp_path):
    pytest.importorskip("yaml")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("augment: uncertainty\ncandidates: 6\nlr: 0.02\n")
    p = build_parser(methods=["uncertainty"])
    apply_config(p, load_config(cfg), cfg)
    a = p.parse_args(["--lr", "0.05"])
    assert (a.augment, a.candidates, a.lr) == ("uncertainty", 6, 0.05)


def test_help_of_one_method_lists_its_options_and_no_other_methods(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--augment", "randaugment", "--help"])
    out = capsys.readouterr().out
    assert "--ra-magnitude" in out and "--lr" in out and "--config" in out
    for other in ("--instances", "--candidates", "--aa-policy", "--tanda-epochs"):
        assert other not in out
    # the multi-stage methods' typed options too, each without the other's
    for name, own, others in (("tanda", "--tanda-epochs", ("--gan-iters", "--instances", "--stages")),
                              ("influence", "--gan-iters", ("--tanda-epochs", "--candidates"))):
        with pytest.raises(SystemExit):
            main(["train", "--augment", name, "--help"])
        out = capsys.readouterr().out
        assert own in out and "--lr" in out and not any(o in out for o in others)
    # every method's own options appear under its own --help
    for name in registry.names():
        with pytest.raises(SystemExit):
            main(["train", "--augment", name, "--help"])
        titles = [line for line in capsys.readouterr().out.splitlines() if line.startswith("--augment ")]
        if name in ("none", "standard", "trivialaugment"):  # no options of their own: no group
            assert titles == []
        else:
            (title,) = titles
            assert name in title.rstrip(":").split("--augment ")[1].split(" / ")


def test_args_json_of_a_library_run_is_a_config_too(small, tmp_path):
    """A run started from Python holds every method's options in args.json (at their defaults)."""
    from fastaug.train import train

    a, b = tmp_path / "lib", tmp_path / "b"
    train(small("lib", augment="uncertainty", epochs=1, train_size=64, candidates=3))
    assert "instances" in json.loads((a / "args.json").read_text())
    cli("train", "--config", a / "args.json", "--output-dir", b, "--no-progress")
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert json.loads((b / "args.json").read_text())["candidates"] == 3
