"""DDP over a model with a fastaug.nn.Warp layer: two gloo processes on CPU, gradients synchronised."""
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

WORLD = 2


def _model():
    torch.manual_seed(0)  # the same initial weights on every rank, as DDP expects
    from fastaug.nn import Warp

    return Warp(nn.Conv2d(2, 2, 3, padding=1), padding_mode="border")


def _batch(rank):
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own data
    return torch.rand(3, 1, 8, 8, generator=g), torch.rand(3, 1, 8, 8, generator=g)


def _loss(model, moving, fixed):
    warped = model(moving, context=torch.cat([moving, fixed], 1))
    return (warped - fixed).square().mean()


def _worker(rank, init_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        ddp = nn.parallel.DistributedDataParallel(_model())
        _loss(ddp, *_batch(rank)).backward()
        grads = [p.grad for p in ddp.parameters()]
        # reference: the mean over ranks of each rank's own gradient, computed here without DDP
        local = _model()
        expected = [torch.zeros_like(p) for p in local.parameters()]
        for r in range(WORLD):
            local.zero_grad()
            _loss(local, *_batch(r)).backward()
            for e, p in zip(expected, local.parameters()):
                e += p.grad / WORLD
        for g, e in zip(grads, expected):
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)
        assert all(g.abs().sum() > 0 for g in grads)
        # and the ranks hold the same gradient: DDP did all-reduce it
        gathered = [torch.zeros_like(grads[0]) for _ in range(WORLD)]
        dist.all_gather(gathered, grads[0])
        assert torch.equal(gathered[0], gathered[1])
        # No rank tears gloo down while the other may still be inside a collective: without this
        # barrier a rank's destroy_process_group can race the peer's last all_gather (one CI run
        # aborted with 'terminate called without an active exception'), as PyTorch's own tests do.
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes each import torch and fastaug: ~25 s on a busy 2-core machine
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_ddp_two_gloo_processes_average_the_warp_head_gradients(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the spawned ranks inherit it
    # spawn raises ProcessRaisedException carrying the worker's assertion when a rank fails
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"),), nprocs=WORLD, join=True)
