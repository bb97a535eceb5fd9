"""A user's own method and stage on fastaug's engine, as docs/design.md ("How to add a method", "How to
add a stage") writes them; test_library_use.py copies this file out of the package and runs it:
``python script.py RUN_FOLDER``.

The stage computes every class's mean training image (an artifact); the method mixes each image with
the mean image of a random other image's class and trains with its own loss, the mixup loss."""
import sys

import torch
import torch.nn.functional as F

from fastaug.train import (ClassifierStage, Method, MissingInput, Pipeline, Stage, StageResult, TrainBatch,
                           default_args, load_artifact, pipeline_inputs, save_artifact, to_float)


class ClassMeans(Stage):
    name, title = "class_means", "class means"

    def __init__(self, train):
        self.train = train

    def run(self, folder, inputs):
        x, y = to_float(self.train.images), self.train.labels
        means = torch.stack([x[y == c].mean(0) for c in range(self.train.num_classes)])
        path = save_artifact("class-means", {"means": means}, f"{folder}/means.pt", meta={"images": len(y)})
        return StageResult(artifacts={"means": path}, metrics={"classes": len(means)})


class MixWithClassMeans(Method):
    name = "mix-with-class-means"

    def __init__(self, options, trainer, means=None):
        super().__init__(options, trainer)
        if means is None:
            raise MissingInput("mix-with-class-means needs the class means of its first stage")
        self.means = load_artifact("class-means", means).state["means"].to(trainer.device)

    def augment(self, x, y, trainer):
        lam = torch.rand((), generator=trainer.rng).item()
        partner = y[torch.randperm(len(y), generator=trainer.rng).to(y.device)]
        x = lam * to_float(x) + (1 - lam) * self.means[partner]
        return TrainBatch(x, y, extras={"partner": partner, "lam": lam})

    def loss(self, model, batch):
        logits = model(batch.x)
        lam, partner = batch.extras["lam"], batch.extras["partner"]
        losses = (lam * F.cross_entropy(logits, batch.y, reduction="none")
                  + (1 - lam) * F.cross_entropy(logits, partner, reduction="none"))
        return losses.mean(), {"losses": losses.detach(), "logits": logits.detach(), "lam": torch.tensor(lam)}


if __name__ == "__main__":
    args = default_args(epochs=2, train_size=128, batch_size=32, output_dir=sys.argv[1], progress=False, device="cpu")
    args, data, device = pipeline_inputs(args)
    Pipeline(args.output_dir, [
        ClassMeans(data[0]),
        ClassifierStage(args, method=MixWithClassMeans, data=data, inputs={"means": ("class_means", "means")}),
    ]).run()
