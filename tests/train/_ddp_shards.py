"""Run under torchrun by test_distributed.py: a short engine run whose method records the dataset
indices each rank trained on (a per-rank checkpoint part), ``python _ddp_shards.py FOLDER``."""
import sys

import torch

from fastaug.train import Trainer, default_args
from fastaug.train.method import Method


class RecordIndices(Method):
    name = "record"

    def __init__(self, options, trainer):
        super().__init__(options, trainer)
        self.seen = []

    def after_step(self, batch, losses, trainer):
        self.seen.append(batch.index.cpu())

    def state_dict(self):
        return {"seen": torch.cat(self.seen) if self.seen else torch.zeros(0, dtype=torch.int64)}

    def load_state_dict(self, state):
        self.seen = [state["seen"]]


if __name__ == "__main__":
    args = default_args(train_size=250, batch_size=25, epochs=1, output_dir=sys.argv[1], progress=False, device="cpu")
    Trainer(args, method=RecordIndices).fit()
