"""A tiny loop on the primitive, run as a script by test_loop.py: ``python _toy_loop.py FOLDER [resume]``.

A linear model on random data drawn from a registered CPU generator, Adam, a cosine LR schedule,
dropout (the global torch stream), NumPy and Python draws mixed into the data, so that a resume that
loses any of these states diverges."""
import random
import sys

import numpy as np
import torch

from fastaug.train.loop import Loop, optimizer_step


def run(folder, resume="auto", epochs=3, steps=5, checkpoint_every=2, log_every=0):
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps)
    gen = torch.Generator().manual_seed(1)
    loop = Loop(folder, name="toy", options={"epochs": epochs}, epochs=epochs, steps_per_epoch=steps,
                checkpoint_every=checkpoint_every, log_every=log_every, resume=resume, progress=False)
    loop.register("net", net)
    loop.register("optimizer", opt)
    loop.register("scheduler", sched)
    loop.register("data", gen, per_rank=True)
    for epoch, step in loop:
        x = torch.randn(16, 4, generator=gen) + float(np.random.rand()) + random.random()
        y = x.sum(1, keepdim=True)
        loss = (net(x) - y).square().mean()
        optimizer_step(loss, opt, scheduler=sched, clip_grad=1.0)
        loop.meters.add(n=16, loss=loss.detach() * 16)
    return net, loop


if __name__ == "__main__":
    run(sys.argv[1], resume=(sys.argv[2] == "resume") if len(sys.argv) > 2 else "auto")
