"""A run folder whose checkpoint.pt is gone (deleted, moved) but whose metrics.jsonl / summary.json record a
run: --resume (or a new run there) said "no checkpoint yet (the run stopped before its first one): starting
from the beginning" and overwrote the finished run's records; now one sentence, nothing touched."""
import os

import pytest

from fastaug.cli import main
from fastaug.train import train


@pytest.mark.parametrize("resume", [True, False])
def test_a_run_whose_checkpoint_is_gone_is_not_restarted(small, capsys, resume):
    args = small("run", epochs=1, augment="standard")
    train(args)
    d = args.output_dir
    os.remove(os.path.join(d, "checkpoint.pt"))
    with open(os.path.join(d, "summary.json")) as f, open(os.path.join(d, "metrics.jsonl")) as g:
        before = f.read(), g.read()
    argv = ["train", "--output-dir", d, "--no-progress"] + (["--resume"] if resume else
                                                              ["--train-size", "256", "--batch-size", "32"])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a run (1 epoch in metrics.jsonl) but no checkpoint.pt" in err[0], err
    with open(os.path.join(d, "summary.json")) as f, open(os.path.join(d, "metrics.jsonl")) as g:
        assert (f.read(), g.read()) == before
    assert not os.path.exists(os.path.join(d, "checkpoint.pt"))
