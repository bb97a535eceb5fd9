"""A/B of the HVP's second GEMM on CUDA: u^T h as one GEMM vs split over sample blocks (development aid)."""
import torch
from torch.utils.benchmark import Timer

for N, D, KC in ((50_000, 640, 800), (50_000, 640, 100), (50_000, 512, 10)):
    u, h = torch.randn(N, KC, device="cuda"), torch.randn(N, D, device="cuda")
    S = min(16, N // 4096)
    r = S * (N // S)
    one = Timer("u.t() @ h", globals=dict(u=u, h=h)).blocked_autorange(min_run_time=0.5).median * 1e3
    split = Timer("torch.bmm(u[:r].view(S, -1, KC).transpose(1, 2), h[:r].view(S, -1, D)).sum(0)",
                  globals=dict(u=u, h=h, r=r, S=S, KC=KC, D=D, torch=torch)).blocked_autorange(min_run_time=0.5).median * 1e3
    print(f"N={N} D={D} KC={KC}: one GEMM {one:.3f} ms, split S={S} {split:.3f} ms")
