"""`fastaug train --augment tanda --resume` after a kill in stage 1: the classifier stage, which had not
started, said "no checkpoint in RUN yet (the run stopped before its first one): starting train from the
beginning", a false account of what happened."""
from fastaug.train.engine import ClassifierStage
from fastaug.train.pipeline import Pipeline

from test_pipeline import Count


def test_the_classifier_stage_of_a_resumed_pipeline_starts_without_a_false_message(small, capsys):
    args = small("run", epochs=1, augment="standard", resume=True)
    Pipeline(args.output_dir, [Count(3), ClassifierStage(args)], log=print).run()
    out = capsys.readouterr().out
    assert "stopped before its first one" not in out and "final test accuracy" not in out  # (the CLI prints that)
    assert "the classifier done" in out
