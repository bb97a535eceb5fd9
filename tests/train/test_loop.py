"""The loop primitive: kill at a step count then resume is bit-identical, weights-only checkpoints,
one-sentence refusals of foreign, old-format, corrupt and code-running checkpoints, meters, the step."""
import json
import os
import pickle
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from fastaug.train.checkpoint import CheckpointError
from fastaug.train.loop import KILL_ENV, Checkpointer, Loop, Meters, optimizer_step
from fastaug.train.rng import GlobalRandomState

HERE = os.path.dirname(__file__)


def _script(folder, *extra, kill=None):
    path = [os.getcwd(), HERE] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    env.pop(KILL_ENV, None)
    if kill is not None:
        env[KILL_ENV] = kill
    return subprocess.run([sys.executable, os.path.join(HERE, "_toy_loop.py"), str(folder), *extra],
                          capture_output=True, text=True, timeout=300, env=env)


def _state(folder):
    return torch.load(os.path.join(folder, "checkpoint.pt"), weights_only=True)


@pytest.mark.parametrize("kill_step", sorted(random.Random(17).sample(range(2, 15), 2)))
def test_sigkill_at_a_step_then_resume_is_bit_identical(tmp_path, kill_step):
    from _toy_loop import run

    ref, _ = run(str(tmp_path / "ref"))
    out = _script(tmp_path / "killed", kill=f"toy:{kill_step}")
    assert out.returncode == -9, out.stderr  # SIGKILL, as a crash
    # checkpoints: every 2 steps, and at each epoch's end (5, 10, 15: written after the kill hook)
    saved = [s for s in range(1, kill_step + 1) if s % 2 == 0 and s % 5] + [s for s in range(1, kill_step) if s % 5 == 0]
    assert _state(tmp_path / "killed")["ranks"][0]["loop"]["global_step"] == max(saved)
    out = _script(tmp_path / "killed", "resume")
    assert out.returncode == 0, out.stderr
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    net.load_state_dict(_state(tmp_path / "killed")["net"])
    for a, b in zip(ref.state_dict().values(), net.state_dict().values()):
        assert torch.equal(a, b)
    with open(tmp_path / "ref" / "metrics.jsonl") as f, open(tmp_path / "killed" / "metrics.jsonl") as g:
        assert f.read() == g.read()  # the per-epoch means too, summed across the kill


def test_resume_before_the_first_checkpoint_starts_over_in_one_line(tmp_path):
    out = _script(tmp_path / "k", kill="toy:1")  # killed before the first checkpoint (step 2)
    assert out.returncode == -9 and not (tmp_path / "k" / "checkpoint.pt").exists()
    out = _script(tmp_path / "k", "resume")
    assert out.returncode == 0 and "starting toy from the beginning" in out.stdout


def test_a_finished_folder_is_not_overwritten(tmp_path):
    from _toy_loop import run

    run(str(tmp_path))
    with pytest.raises(CheckpointError, match="already holds a run"):
        run(str(tmp_path), resume=False)


def _refused(tmp_path, obj_or_bytes, match):
    from _toy_loop import run

    path = tmp_path / "checkpoint.pt"
    if isinstance(obj_or_bytes, bytes):
        path.write_bytes(obj_or_bytes)
    else:
        torch.save(obj_or_bytes, path)
    with pytest.raises(CheckpointError, match=match) as err:
        run(str(tmp_path))
    assert "\n" not in str(err.value)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_foreign_old_corrupt_and_code_running_checkpoints_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refused(tmp_path, {"format": "fastaug-train-1", "model": {}}, "older fastaug")
    _refused(tmp_path, {"format": "fastaug-train-1", "rng": np.zeros(3)}, "needs pickle")
    _refused(tmp_path, [1, 2, 3], "format 'list'")
    _refused(tmp_path, pickle.dumps(_RunsCode(), protocol=2), "needs pickle|unreadable")
    torch.save({"format": "fastaug-train-1", "x": _RunsCode()}, tmp_path / "checkpoint.pt")
    _refused(tmp_path, (tmp_path / "checkpoint.pt").read_bytes(), "needs pickle")
    _refused(tmp_path, bytes(range(256)) * 20, "unreadable")  # no pickle at all: not "needs pickle"
    assert not (tmp_path / "pwned").exists()  # nothing in the file ran
    from _toy_loop import run

    os.remove(tmp_path / "checkpoint.pt")
    run(str(tmp_path))
    blob = (tmp_path / "checkpoint.pt").read_bytes()
    _refused(tmp_path, blob[: len(blob) // 2], "unreadable")
    (tmp_path / "checkpoint.pt").write_bytes(blob)
    with pytest.raises(CheckpointError, match=r"different arguments \(--epochs 3 -> 4\)"):
        run(str(tmp_path), epochs=4)


def test_global_random_state_round_trips_through_a_weights_only_file(tmp_path):
    part = GlobalRandomState()
    torch.manual_seed(3), np.random.seed(3), random.seed(3), np.random.randn(), random.gauss(0, 1)
    torch.save(part.state_dict(), tmp_path / "s.pt")
    expect = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], random.gauss(0, 1))
    part.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    got = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], random.gauss(0, 1))
    assert torch.equal(expect[0], got[0]) and np.array_equal(expect[1], got[1]) and expect[2:] == got[2:]


def test_a_part_that_needs_pickle_is_refused_at_save(tmp_path):
    class Bad:
        def state_dict(self):
            return {"array": np.zeros(2)}

        def load_state_dict(self, s):
            pass

    c = Checkpointer(str(tmp_path / "c.pt"))
    c.register("bad", Bad())
    with pytest.raises(TypeError, match=r"\['bad'\]\['array'\] is a numpy.ndarray"):
        c.save()


def test_meters_sum_on_the_device_and_round_trip():
    m = Meters()
    m.add(n=4, loss=torch.tensor(2.0), correct=3)
    m.add(n=2, loss=torch.tensor(1.0), correct=1)
    assert m.sums() == {"loss": 3.0, "correct": 4.0} and m.means() == {"loss": 0.5, "correct": 4 / 6}
    m2 = Meters()
    m2.load_state_dict(m.state_dict())
    assert m2.means() == m.means()


def test_log_every_records_step_means(tmp_path):
    from _toy_loop import run

    _, loop = run(str(tmp_path), epochs=1, steps=6, log_every=3)
    with open(tmp_path / "metrics.jsonl") as f:
        hist = [json.loads(line) for line in f]
    assert [h["step"] for h in hist] == [3, 6] and hist == loop.history


def test_log_every_and_every_keep_their_cadence_to_the_last_step_and_across_a_resume(tmp_path):
    """Records every 3 steps and after the last (7); work every 2 steps and after the last, after the
    step's record and before its checkpoint; a loop resumed at step 4 keeps the cadence."""
    from fastaug.train.loop import Loop

    def run(stop=None, resume="auto"):
        calls = []
        loop = Loop(str(tmp_path), name="cadence", epochs=1, steps_per_epoch=7, checkpoint_every=2, log_every=3,
                    step_key="iteration", resume=resume, progress=False)
        loop.every(2, lambda step: calls.append((step, len(loop.history))))
        for _, step in loop:
            loop.meters.add(value=float(loop.global_step + 1))
            if stop is not None and loop.global_step + 1 == stop:
                break
        return loop, calls

    _, first = run(stop=4)  # stopped inside step 4: its last checkpoint is the one after step 2
    assert first == [(2, 0)]
    loop, calls = run(resume=True)
    assert [r["iteration"] for r in loop.history] == [3, 6, 7]
    assert [r["value"] for r in loop.history] == [2.0, 5.0, 7.0]  # means of steps 1-3, 4-6, 7
    assert calls == [(4, 1), (6, 2), (7, 3)]  # step 2 was done before the resume; each call sees its record
    with pytest.raises(ValueError, match="n >= 1"):
        loop.every(0, print)


def test_optimizer_step_with_several_optimisers_and_with_a_closure():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)
    a2, b2 = torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)
    a2.load_state_dict(a.state_dict())
    b2.load_state_dict(b.state_dict())
    x = torch.randn(5, 3)
    oa, ob = torch.optim.SGD(a.parameters(), lr=0.1), torch.optim.Adam(b.parameters(), lr=0.01)
    optimizer_step(b(a(x)).square().mean(), (oa, ob))  # one backward, two optimisers at their own rates
    ref_a, ref_b = torch.optim.SGD(a2.parameters(), lr=0.1), torch.optim.Adam(b2.parameters(), lr=0.01)
    b2(a2(x)).square().mean().backward()
    ref_a.step()
    ref_b.step()
    assert all(torch.equal(p, q) for p, q in zip([*a.parameters(), *b.parameters()], [*a2.parameters(),
                                                                                        *b2.parameters()]))
    # L-BFGS re-evaluates the loss: the closure is a forward, zeroing and backward happen inside
    w = torch.zeros(3, requires_grad=True)
    target = torch.tensor([1.0, -2.0, 0.5])
    opt = torch.optim.LBFGS([w], max_iter=50, line_search_fn="strong_wolfe")
    first = optimizer_step(None, opt, closure=lambda: (w - target).square().sum())
    assert first.item() == pytest.approx(target.square().sum().item())
    torch.testing.assert_close(w.detach(), target)


def test_optimizer_step_matches_a_hand_written_step():
    torch.manual_seed(0)
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    oa, ob = torch.optim.SGD(a.parameters(), lr=0.1), torch.optim.SGD(b.parameters(), lr=0.1)
    x = torch.randn(5, 3) * 10
    norm = optimizer_step(a(x).square().sum(), oa, clip_grad=0.5)
    ob.zero_grad()
    b(x).square().sum().backward()
    ref = torch.nn.utils.clip_grad_norm_(b.parameters(), 0.5)
    ob.step()
    assert torch.equal(norm, ref) and all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_a_loop_that_cannot_be_distributed_says_so_under_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"^feature CNN runs in one process and cannot be distributed; [^\n]*$"):
        Loop(None, name="feature CNN", steps_per_epoch=1, distributed=False)
    Loop(None, name="engine", steps_per_epoch=1)  # a distributable loop is built as usual


@pytest.mark.cuda
def test_optimizer_step_with_a_float16_grad_scaler_matches_torch_amp_recipe():
    """float16 AMP on CUDA: scale, backward, unscale, clip, step, update, as torch.amp documents it."""
    from fastaug.train.loop import make_scaler

    torch.manual_seed(0)
    a = torch.nn.Linear(8, 4).cuda()
    b = torch.nn.Linear(8, 4).cuda()
    b.load_state_dict(a.state_dict())
    oa, ob = torch.optim.SGD(a.parameters(), lr=0.1), torch.optim.SGD(b.parameters(), lr=0.1)
    sa, sb = make_scaler("cuda", torch.float16), torch.amp.GradScaler("cuda")
    x = torch.randn(16, 8, device="cuda")
    for _ in range(3):
        with torch.autocast("cuda", dtype=torch.float16):
            la = a(x).float().square().mean()
        optimizer_step(la, oa, scaler=sa, clip_grad=0.5)
        with torch.autocast("cuda", dtype=torch.float16):
            lb = b(x).float().square().mean()
        ob.zero_grad(set_to_none=True)
        sb.scale(lb).backward()
        sb.unscale_(ob)
        torch.nn.utils.clip_grad_norm_(b.parameters(), 0.5)
        sb.step(ob)
        sb.update()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert sa.get_scale() == sb.get_scale()
    with pytest.raises(ValueError, match="float16 needs CUDA"):
        make_scaler("cpu", torch.float16)
