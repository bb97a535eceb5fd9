"""Loops outside the engine, run as scripts by test_loops_resume.py: ``python _resumable_loops.py
(toy2d|features) FOLDER``; the result goes to FOLDER/result.pt (tensors only)."""
import os
import sys

import torch


def toy2d(folder):
    from fastaug.experiments.toy2d import run_toy2d

    summary, arrays = run_toy2d(folder=folder, n_train=60, n_val=60, train_steps=120, aug_steps=40,
                                checkpoint_every=15, val_shift=(0.0, -0.5))
    return {"x_aug": arrays["x_aug"], "after": arrays["after"].state_dict(),
            "val_loss_random_directions": torch.tensor(summary["val_loss_random_directions"])}


def features(folder):
    from fastaug.data import mnist5k
    from fastaug.experiments.subsample.features import FeatureConfig, train_feature_model

    data = mnist5k("train").subset(torch.arange(96))
    model = train_feature_model(data.images, data.labels, 10, FeatureConfig(epochs=3, batch_size=16, seed=3),
                                mean=data.mean, std=data.std, folder=folder)
    return {"model": model.state_dict()}


if __name__ == "__main__":
    torch.set_num_threads(1)
    what, folder = sys.argv[1], sys.argv[2]
    result = {"toy2d": toy2d, "features": features}[what](folder)
    torch.save(result, os.path.join(folder, "result.pt"))
