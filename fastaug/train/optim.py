"""Optimiser and per-step learning-rate schedule from the training arguments."""
import math

import torch

__all__ = ["build_optimizer", "build_scheduler", "lr_factor"]


def build_optimizer(params, args):
    """SGD (momentum, Nesterov, weight decay) or Adam (betas, L2 weight decay), as ``--opt`` says."""
    if args.opt == "sgd":
        return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, nesterov=bool(args.nesterov),
                               weight_decay=args.wd)
    if args.opt == "adam":
        return torch.optim.Adam(params, lr=args.lr, betas=tuple(args.opt_betas), weight_decay=args.wd)
    raise ValueError(f"unknown --opt {args.opt!r}; choose sgd or adam")


def lr_factor(step, steps_per_epoch, args):
    """Multiplier of the peak LR at optimiser step ``step`` (0-based): warm-up, then the schedule."""
    total = args.epochs * steps_per_epoch
    warm = int(round(args.warmup_epochs * steps_per_epoch))
    if step < warm:
        return (step + 1) / warm
    if args.sched == "cosine":
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    if args.sched == "step":
        epoch = step / steps_per_epoch
        return args.decay_rate ** sum(epoch >= m for m in args.decay_milestones)
    return 1.0


def build_scheduler(optimizer, steps_per_epoch, args):
    """A LambdaLR stepped once per optimiser step (its state is part of every checkpoint)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, args))
