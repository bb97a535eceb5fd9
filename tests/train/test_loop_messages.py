"""What a resumed loop says: a loop resumed after its last epoch (killed before its last outputs, or a
finished comparison run again) said "resumed ... at epoch 4" of a 3-epoch run."""
from _toy_loop import run


def test_a_finished_loop_resumed_says_so(tmp_path, capsys):
    run(str(tmp_path / "toy"))
    capsys.readouterr()
    run(str(tmp_path / "toy"), resume=True)
    out = capsys.readouterr().out
    assert "after its last epoch (3, global step 15): nothing left to train" in out and "epoch 4" not in out
