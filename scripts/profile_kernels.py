"""Per-kernel GPU times of fastaug's fused ops at the benchmark size (torch.profiler), to see where a
forward/backward spends its time. Development aid; needs a GPU.

    python scripts/profile_kernels.py [--n 256] [--size 224]
"""
import argparse

import torch
from torch.profiler import ProfilerActivity, profile

import fastaug


def cases(N, S):
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.rand(N, 3, S, S, device="cuda", generator=g)
    s_w = (0.1 * torch.randn(N, 4, S, S, device="cuda", generator=g)).requires_grad_()
    s_b = (0.1 * torch.randn(N, 2, S, S, device="cuda", generator=g)).requires_grad_()
    params = (0.1 * torch.randn(N, 18, S, S, device="cuda", generator=g)).requires_grad_()
    flow = (2 * torch.randn(N, 2, S, S, device="cuda", generator=g)).requires_grad_()
    yield "warp fwd+bwd", lambda: fastaug.warp(x, flow).sum().backward()
    yield "affine_flow_warp fwd+bwd", lambda: fastaug.affine_flow_warp(x, s_w, s_b, smooth=4).sum().backward()
    yield "transform parallel fwd+bwd", lambda: fastaug.transform(x, params, smooth=4).sum().backward()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        ap.error("profiles the CUDA kernels: it needs a visible GPU and fastaug built with CUDA")
    for name, fn in cases(args.n, args.size):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                fn()
            torch.cuda.synchronize()
        print(f"\n## {name} (5 calls)")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=8, max_name_column_width=60))


if __name__ == "__main__":
    main()
