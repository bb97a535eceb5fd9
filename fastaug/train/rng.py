"""Seeds derived from the run's seed, and capture/restore of every random state a resume needs."""
import hashlib
import random

import numpy as np
import torch

__all__ = ["derive_seed", "capture_rng", "restore_rng"]


def derive_seed(seed, *tags):
    """A 63-bit seed for a named stream of run ``seed`` (e.g. ``derive_seed(0, "augment", rank)``).

    Streams with different tags are independent; the same (seed, tags) always gives the same seed.
    """
    text = "/".join(str(t) for t in (seed,) + tags).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def capture_rng(generators):
    """Every global random state plus the given named CPU generators, as a picklable dict."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
             "generators": {k: g.get_state() for k, g in generators.items()}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state, generators):
    """Inverse of :func:`capture_rng` (the generators are restored in place)."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    missing = set(generators) - set(state["generators"])
    if missing:
        raise ValueError(f"the checkpoint has no state for the generators {sorted(missing)}")
    for k, g in generators.items():
        g.set_state(state["generators"][k])
