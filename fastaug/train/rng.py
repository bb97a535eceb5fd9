"""Seeds derived from the run's seed, and every random state a resume needs as checkpoint parts.

Random states are stored as tensors and plain numbers only (Python's ``random`` and NumPy's Mersenne
Twister states are converted), so a checkpoint loads with ``torch.load(..., weights_only=True)``.
"""
import hashlib
import random

import numpy as np
import torch

__all__ = ["derive_seed", "GlobalRandomState", "GeneratorState"]


def derive_seed(seed, *tags):
    """A 63-bit seed for a named stream of run ``seed`` (e.g. ``derive_seed(0, "augment", rank)``).

    Streams with different tags are independent; the same (seed, tags) always gives the same seed.
    """
    text = "/".join(str(t) for t in (seed,) + tags).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


class GlobalRandomState:
    """The process-wide random states (torch CPU, every CUDA device in use, Python ``random``, NumPy)
    as a stateful checkpoint part: ``state_dict()`` holds tensors and numbers only."""

    def state_dict(self):
        version, internal, gauss = random.getstate()
        name, keys, pos, has_gauss, cached = np.random.get_state()
        state = {"torch": torch.get_rng_state(),
                 "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                            "gauss": gauss},
                 "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                           "has_gauss": int(has_gauss), "cached": float(cached)}}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state):
        torch.set_rng_state(state["torch"])
        py = state["python"]
        random.setstate((py["version"], tuple(py["internal"].tolist()), py["gauss"]))
        npy = state["numpy"]
        np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                             npy["cached"]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class GeneratorState:
    """A ``torch.Generator`` (CPU or CUDA) as a stateful checkpoint part (its state is a uint8 tensor)."""

    def __init__(self, generator):
        self.generator = generator

    def state_dict(self):
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["state"])
