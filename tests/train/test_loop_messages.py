"""What a resumed loop says: a loop resumed after its last epoch (killed before its last outputs, or a
finished comparison run again) said "resumed ... at epoch 4" of a 3-epoch run."""
from _toy_loop import run


def test_a_finished_loop_resumed_says_so(tmp_path, capsys):
    run(str(tmp_path / "toy"))
    capsys.readouterr()
    run(str(tmp_path / "toy"), resume=True)
    out = capsys.readouterr().out
    assert "after its last epoch (3, global step 15): nothing left to train" in out and "epoch 4" not in out


def _one_epoch_of_steps(folder, trained):
    """The stages' pattern (the influence loop's stages 2 and 4): ``loop.steps()`` over one epoch, then
    ``end_epoch`` if not done."""
    import torch

    from fastaug.train.loop import Loop

    net = torch.nn.Linear(2, 1)
    loop = Loop(folder, name="stage", epochs=1, steps_per_epoch=4, checkpoint_every=2, log_every=2, progress=False,
                log=lambda msg: None)
    loop.register("net", net)
    for step in loop.steps():
        trained.append(step)
        with torch.no_grad():
            net.weight.add_(1.0)
    if not loop.done:
        loop.end_epoch()
    return net, loop


def test_steps_of_a_loop_resumed_after_its_last_epoch_train_nothing(tmp_path):
    """The influence loop killed after stage 4's last checkpoint, before its augmenter.pt: the resumed stage
    trained its 4 steps again from the end state (and appended their records), so the run was no longer
    bit-identical to an uninterrupted one."""
    first, again = [], []
    net, loop = _one_epoch_of_steps(str(tmp_path / "s"), first)
    net2, loop2 = _one_epoch_of_steps(str(tmp_path / "s"), again)  # as a resume after a kill there
    assert first == [0, 1, 2, 3] and again == []
    assert loop2.resumed and loop2.global_step == 4 and loop2.history == loop.history
    assert net2.weight.eq(net.weight).all()
