"""Last-layer influence family: fastaug.last_layer_hvp, CG / exact solves and influence scoring vs what
a user writes today.

Baselines, in the same run:
* "autograd double-backward HVP": forward through the last layer, grad with create_graph, grad of
  <grad, v> (what torch-influence and similar libraries do per product);
* "two-GEMM torch composition": the closed form in stock torch ops (U = V H~^T, the softmax Jacobian
  step as separate elementwise ops, R^T H~);
* the per-sample autograd loop for influence scores (timed on a subset, extrapolated to N).

Targets: single HVP >= 1.8x autograd on CPU (2x on CUDA) and never slower than the two-GEMM
composition (>= 1x); 8 right-hand sides at once >= 2.5x 8 autograd HVPs on CPU (4x on CUDA); the exact
path (form H once, Cholesky) beats CG in total time whenever C*(D+1) <= 5000 and N >= 10000; scoring
all N >= 100x the per-sample loop. CPU sizes use N = 10,000 instead of 50,000 (stated in each row).
"""
import sys
import time

import torch
import torch.nn.functional as F

import fastaug
from fastaug.influence import LastLayerHessian, conjugate_gradient, solve_exact

from .harness import Row, compare, device_name, time_ms

DAMPING = 1e-3


def make_problem(N, D, C, device, dtype=torch.float32, seed=0):
    """Features of a Gaussian-mixture 'penultimate layer' (ReLU of weakly class-dependent means plus
    noise) and a last layer set to scaled class centroids (nearest-centroid classifier, 70-98%
    training accuracy, confident but not saturated): a trained-looking, ill-conditioned Hessian."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (N,), generator=g)
    means = 0.15 * torch.randn(C, D, generator=g)
    h = torch.relu(means[y] + torch.randn(N, D, generator=g))
    centroids = torch.stack([h[y == c].mean(0) if bool((y == c).any()) else h.mean(0) for c in range(C)])
    W = 2.0 * (centroids - centroids.mean(0))
    b = -(h @ W.T).mean(0)
    to = dict(device=device, dtype=dtype)
    return h.to(**to), y.to(device), W.to(**to), b.to(**to)


def autograd_hvp(h, y, W, b, V, damping=DAMPING):
    """Double-backward HVP of the mean cross-entropy w.r.t. (W, b); V (C, D+1)."""
    W = W.detach().requires_grad_()
    b = b.detach().requires_grad_()
    loss = F.cross_entropy(torch.addmm(b, h, W.T), y)
    gW, gb = torch.autograd.grad(loss, (W, b), create_graph=True)
    D = h.shape[1]
    dot = (gW * V[:, :D]).sum() + (gb * V[:, D]).sum()
    hW, hb = torch.autograd.grad(dot, (W, b))
    return torch.cat([hW, hb[:, None]], 1) + damping * V


def torch_hvp(h, p, V, damping=DAMPING):
    """The closed form as stock torch ops; V (K, C, D+1)."""
    K, C, D1 = V.shape
    N, D = h.shape
    V2 = V.reshape(K * C, D1)
    U = torch.addmm(V2[:, D], h, V2[:, :D].T).view(N, K, C)
    R = p[:, None] * (U - (p[:, None] * U).sum(-1, keepdim=True))
    R = R.reshape(N, K * C) / N
    return torch.cat([R.T @ h, R.sum(0)[:, None]], 1).view(K, C, D1) + damping * V


class _Op:
    """A Hessian operator for the CG code driven by another product (for like-for-like CG timings)."""

    def __init__(self, ref, matvec):
        self.shape, self.device, self.dtype, self.num_params = ref.shape, ref.device, ref.dtype, ref.num_params
        self.matvec = matvec


def _log(rows):
    r = rows[-1]
    print(f"[bench] influence: {r.case} | {r.size} | {r.speedup:.2f}x vs {r.baseline}", file=sys.stderr, flush=True)


def _row(case, size, device, ours_ms, baseline, baseline_ms, target=None, note=""):
    return Row("influence", case, size, device_name(device), ours_ms, baseline, baseline_ms, target, note=note)


def run(device, quick=False):
    cpu = device == "cpu"
    N = 2000 if quick else (10_000 if cpu else 50_000)
    shapes = [(10, 512)] if quick else [(10, 512), (100, 640)]
    t = 0.1 if quick else (0.5 if cpu else 0.3)
    n_note = "N=10,000 on CPU (issue: 50,000)" if (cpu and not quick) else ""
    rows = []
    for C, D in shapes:
        h, y, W, b = make_problem(N, D, C, device)
        p = torch.softmax(torch.addmm(b, h, W.T), 1)
        size = f"N={N} D={D} C={C} float32"
        gen = torch.Generator().manual_seed(1)
        V = torch.randn(8, C, D + 1, generator=gen).to(device)
        hess = LastLayerHessian(h, p, damping=DAMPING)

        # -- single HVP ---------------------------------------------------------------------------
        rows += compare("influence", "HVP, 1 RHS", size, device,
                        lambda: fastaug.last_layer_hvp(h, p, V[0], damping=DAMPING, check_finite=False),
                        {"autograd double-backward HVP": lambda: autograd_hvp(h, y, W, b, V[0]),
                         "two-GEMM torch composition": lambda: torch_hvp(h, p, V[:1])},
                        {"autograd double-backward HVP": 1.8 if cpu else 2.0, "two-GEMM torch composition": 1.0},
                        t, note=n_note)
        _log(rows)
        # -- 8 right-hand sides in one product (what one block-CG iteration does) -------------------
        rows += compare("influence", "HVP, 8 RHS in one call", size, device,
                        lambda: fastaug.last_layer_hvp(h, p, V, damping=DAMPING, check_finite=False),
                        {"8 autograd double-backward HVPs": lambda: [autograd_hvp(h, y, W, b, V[k]) for k in range(8)],
                         "two-GEMM composition, 8 RHS": lambda: torch_hvp(h, p, V)},
                        {"8 autograd double-backward HVPs": 2.5 if cpu else 4.0}, t, note=n_note)
        _log(rows)
        # -- full CG solves, same iteration count for every operator ------------------------------
        iters = 10 if quick else (20 if cpu else 50)
        cg = dict(tol=0.0, max_iter=iters)
        ag_op = _Op(hess, lambda X: torch.stack([autograd_hvp(h, y, W, b, X[k]) for k in range(X.shape[0])]))
        tc_op = _Op(hess, lambda X: torch_hvp(h, p, X))
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tol=0 always stops on the cap
            for k, label in ((1, "CG solve, 1 RHS"), (8, "block CG solve, 8 RHS")):
                B = V[:k]
                baselines = {"CG with two-GEMM composition": lambda: conjugate_gradient(tc_op, B, **cg)}
                if not (cpu and k == 8 and C > 10):  # 160 autograd HVPs at C=100: minutes on 2 cores
                    baselines["CG with autograd double-backward HVPs"] = lambda: conjugate_gradient(ag_op, B, **cg)
                rows += compare("influence", f"{label}, {iters} iterations", size, device,
                                lambda: conjugate_gradient(hess, B, **cg), baselines,
                                None, 0.0 if cpu else t, note=(n_note + "; " if n_note else "") + "fixed iteration count")
                _log(rows)
        # -- influence scores of all N vs a per-sample autograd loop ---------------------------------
        s = torch.randn(C, D + 1, generator=gen).to(device) * 1e-2
        logits = torch.addmm(b, h, W.T)
        ours_ms = time_ms(lambda: fastaug.influence_score(h, logits, y, s), t)
        n_sub = 50 if quick else 200

        def loop():
            out = torch.empty(n_sub, device=device)
            Wg, bg = W.detach().requires_grad_(), b.detach().requires_grad_()
            for i in range(n_sub):
                gW, gb = torch.autograd.grad(F.cross_entropy(torch.addmm(bg, h[i:i + 1], Wg.T), y[i:i + 1]), (Wg, bg))
                out[i] = (gW * s[:, :D]).sum() + (gb * s[:, D]).sum()
            return out

        loop_ms = time_ms(loop, t) * N / n_sub
        rows.append(_row("influence scores, all N", size, device, ours_ms, "per-sample autograd loop", loop_ms,
                         100, (n_note + "; " if n_note else "") +
                         f"loop timed on {n_sub} samples and extrapolated x{N // n_sub}"))
        _log(rows)

    # -- exact (form H once + Cholesky) vs CG, C*(D+1) <= 5000 and N >= 10000 ------------------------
    exact_sizes = [(2000, 10, 63)] if quick else [(10_000, 10, 255), (10_000, 10, 499)]
    if not cpu and not quick:
        exact_sizes = [(50_000, 10, 255), (50_000, 10, 499)]
    for N_e, C, D in exact_sizes:
        h, y, W, b = make_problem(N_e, D, C, device)
        p = torch.softmax(torch.addmm(b, h, W.T), 1)
        tol = 1e-5
        for K in (1, 16):
            B = torch.randn(K, C, D + 1, generator=torch.Generator().manual_seed(2)).to(device)

            def exact():
                return solve_exact(LastLayerHessian(h, p, damping=DAMPING), B)  # fresh: no cached factor

            def cg_solve():
                return conjugate_gradient(LastLayerHessian(h, p, damping=DAMPING), B, tol=tol, max_iter=5000)

            _, info_e = exact()
            t0 = time.perf_counter()
            _, info_c = cg_solve()
            cg_once = time.perf_counter() - t0
            ex_ms = time_ms(exact, 0.0 if quick else 1.0)
            cg_ms = time_ms(cg_solve, 0.0) if cg_once < 5 else cg_once * 1e3
            rows.append(_row(f"exact solve (form H + Cholesky) vs {'block ' if K > 1 else ''}CG, {K} RHS",
                             f"N={N_e} D={D} C={C} C(D+1)={C * (D + 1)} float32", device, ex_ms,
                             f"{'block ' if K > 1 else ''}CG to rel. residual {tol:g}", cg_ms,
                             1.0 if (C * (D + 1) <= 5000 and N_e >= 10_000) else None,
                             f"CG: {info_c.iterations} iterations, residual {info_c.residual:.1e}; "
                             f"exact residual {info_e.residual:.1e}; damping {DAMPING:g}"))
            _log(rows)
    return rows
