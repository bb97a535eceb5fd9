"""Time per epoch of CIFAR-10 WRN-28-10 under ``--augment adversarial`` (M = 8), measured on a few
steps of synthetic 32x32 data with the real training method and engine step, then extrapolated.

    python -m benchmarks.experiments.wrn_step_time --batch-size 4 --steps 3 [--device cuda]

Per-image cost is taken from steps of N images (M·N trained per step; N below the real 128 so that
a CPU step finishes), then scaled to CIFAR-10's 50,000 images x M = 8 instances per epoch and the
paper's 200 epochs (Table 7). The first step is a warm-up and is not counted.
"""
import argparse
import tempfile
import time

import torch

from fastaug.data.base import ImageData
from fastaug.train import Trainer, default_args


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--instances", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    for flag, value in (("--batch-size", a.batch_size), ("--instances", a.instances), ("--steps", a.steps)):
        if value < 1:
            p.error(f"{flag} must be >= 1, got {value}")
    g = torch.Generator().manual_seed(0)
    mk = lambda n: ImageData(torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),  # noqa: E731
                             torch.randint(0, 10, (n,), generator=g), tuple(str(i) for i in range(10)), "cifar10",
                             True, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    with tempfile.TemporaryDirectory() as d:
        args = default_args(dataset="cifar10", model="wrn28_10", augment="adversarial", instances=a.instances,
                            batch_size=a.batch_size, device=a.device, output_dir=d, progress=False)
        tr = Trainer(args, data=(mk(a.batch_size * (a.steps + 1)), None, mk(10)))
        tr.model.train()
        times, aug = [], []
        for i, (x, y) in enumerate(tr.train_batches.epoch(0)):
            t0 = time.perf_counter()
            batch = tr.method.augment(x, y, tr)
            tr.sync()
            t1 = time.perf_counter()
            _, logs = tr.train_step(batch)
            tr.method.after_step(batch, logs["losses"], tr)
            tr.sync()
            t2 = time.perf_counter()
            if i > 0:
                times.append(t2 - t0)
                aug.append(t1 - t0)
            if i == a.steps:
                break
    per_image = sum(times) / len(times) / (a.batch_size * a.instances)
    epoch_s = per_image * 50_000 * a.instances
    print(f"device {a.device} ({torch.get_num_threads()} threads): {len(times)} steps of N={a.batch_size} x "
          f"M={a.instances} = {a.batch_size * a.instances} images: {1e3 * sum(times) / len(times):.0f} ms/step "
          f"(augment {1e3 * sum(aug) / len(aug):.0f} ms), {1e3 * per_image:.1f} ms per trained image")
    print(f"CIFAR-10 epoch (50,000 x M={a.instances} images): {epoch_s / 3600:.1f} h; 200 epochs: "
          f"{200 * epoch_s / 86400:.0f} days")


if __name__ == "__main__":
    main()
