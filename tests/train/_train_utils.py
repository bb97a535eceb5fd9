"""Helpers for training tests: small, fast runs on MNIST-5k digits (imported by the test modules)."""
import os
import subprocess
import sys

import torch

#: A few hundred digits, small batches: a run takes seconds on a 2-core CPU.
SMALL = dict(train_size=256, batch_size=32, eval_batch_size=500)


def small_args(tmp, **overrides):
    from fastaug.train import default_args

    kw = dict(SMALL, epochs=2, output_dir=str(tmp), progress=False)
    kw.update(overrides)
    return default_args(**kw)


def cli(*args, check=True, timeout=600, **popen):
    """Run ``python -m fastaug <args>`` in a subprocess; returns the CompletedProcess."""
    cmd = [sys.executable, "-m", "fastaug", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=os.environ.copy(), **popen)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def cli_args(d, **kw):
    """Command-line flags for a small run in folder ``d``."""
    kw = dict({k.replace("_", "-"): v for k, v in SMALL.items()}, **{k.replace("_", "-"): v for k, v in kw.items()})
    flags = ["--output-dir", str(d), "--no-progress"]
    for k, v in kw.items():
        if v is True:
            flags.append(f"--{k}")
        else:
            flags += [f"--{k}", *map(str, v if isinstance(v, (list, tuple)) else [v])]
    return flags


def load_model_state(d):
    return torch.load(os.path.join(d, "checkpoint.pt"), map_location="cpu", weights_only=True)["model"]



def same_augmentation(a, b):
    """True when run folders ``a`` and ``b`` wrote the same ``augmentation.pt``, byte for byte (kind, meta
    with the run's provenance and the frozen policy, weights)."""
    with open(os.path.join(a, "augmentation.pt"), "rb") as f, open(os.path.join(b, "augmentation.pt"), "rb") as g:
        return f.read() == g.read()
