"""The frozen policy of a controller: the Monte Carlo estimate of the most probable sub-policies against
their exact probabilities, enumerated over every policy of a small controller (Q = 2 sub-policies of
L = 1 op: 160 x 160 policies, whose log-probabilities ``PolicyController.evaluate`` gives exactly)."""
import itertools

import torch

import fastaug.augment as A
from fastaug.augment.controller import PolicyController
from fastaug.augment.op_table import MAGNITUDE_FREE, OP_IDS, OP_NAMES


def _peaked_controller():
    torch.manual_seed(0)
    c = PolicyController(2, 1)
    with torch.no_grad():  # a few clearly preferred ops and levels, so the top of the ranking is well separated
        c.op_head.bias[OP_IDS["Rotate"]] = 3.0
        c.op_head.bias[OP_IDS["Equalize"]] = 2.0
        c.op_head.bias[OP_IDS["Color"]] = 1.5
        c.level_head.bias[7] = 2.5
        c.level_head.bias[2] = 1.0
    return c


def _exact(c):
    """{(op name, level or None): P(an image's sub-policy is it)}: (P_0 + P_1) / 2 of the exact marginals."""
    pairs = list(itertools.product(range(16), range(10)))
    pol = list(itertools.product(pairs, pairs))
    ops = torch.tensor([[[a[0]], [b[0]]] for a, b in pol])
    levels = torch.tensor([[[a[1]], [b[1]]] for a, b in pol])
    with torch.no_grad():
        p = c.evaluate(ops, levels).log_prob.double().exp()
    assert abs(float(p.sum()) - 1) < 1e-6  # every policy enumerated
    out = {}
    for q in range(2):
        for (o, l), pq in zip(zip(ops[:, q, 0].tolist(), levels[:, q, 0].tolist()), p.tolist()):
            key = (OP_NAMES[o], None if OP_NAMES[o] in MAGNITUDE_FREE else l)
            out[key] = out.get(key, 0.0) + pq / 2
    return out


def test_monte_carlo_top_subpolicies_match_the_exact_enumeration():
    c = _peaked_controller()
    exact = _exact(c)
    m = A.ControllerAugment(c, 3, 16)
    fp = m.frozen_policy(k=10, samples=20000, seed=3)
    got = [(s[0][0], s[0][2]) for s in fp.subpolicies]
    for key, p, e in zip(got, fp.probabilities, fp.stderr):
        assert abs(p - exact[key]) < 5 * e + 1e-4, (key, p, exact[key], e)
    ranked = sorted(exact, key=lambda k: -exact[k])
    top = [k for i, k in enumerate(ranked[:5]) if exact[k] - exact[ranked[i + 1]] > 0.01]  # clear gaps only
    assert top and got[:len(top)] == top
    assert abs(fp.coverage - sum(fp.probabilities)) < 1e-12
    assert abs(sum(fp.op_frequencies) - 1) < 1e-9 and abs(sum(fp.level_frequencies) - 1) < 1e-9
    # seeded: the same estimate every time, another seed another estimate
    assert m.frozen_policy(k=10, samples=20000, seed=3) == fp
    assert m.frozen_policy(k=10, samples=20000, seed=4).probabilities != fp.probabilities


def test_levels_of_ops_without_a_magnitude_are_one_subpolicy():
    c = _peaked_controller()
    fp = A.ControllerAugment(c, 3, 16).frozen_policy(k=50, samples=4000)
    equalize = [s for s in fp.subpolicies if s[0][0] == "Equalize"]
    assert equalize == [[["Equalize", 1.0, None]]]


def test_the_frozen_module_samples_its_subpolicies_by_their_probabilities():
    c = _peaked_controller()
    m = A.ControllerAugment(c, 3, 16, fill=0)
    fz = m.frozen(k=3, samples=20000)
    fp = m.frozen_policy(k=3, samples=20000)
    assert isinstance(fz, A.AutoAugment) and fz.fill == 0 and len(fz.policy) == 3
    w = torch.tensor(fp.probabilities, dtype=torch.float64)
    assert torch.allclose(fz.policy.weights, w / w.sum())
