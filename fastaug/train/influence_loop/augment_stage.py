"""Stage 4: train E and G so that the learned augmentation x~ = G(x, dropout(E(x))) lowers the
predicted validation loss, through the frozen classifier F.

Per step: a batch of training images with the standard crop/flip (what E and G see in stage 5),
their learned augmentations (dropout 0.5 on tau, from the loop's random stream), and the influence
objective ``mean_i I_aug(z_i, z~_i)`` (:mod:`~fastaug.train.influence_loop.objective`: its sign, and
why it is minimised), whose gradient reaches G's parameter maps through ``fastaug.transform``'s
backward and F's features/logits through ``fastaug.influence_aug``'s analytic backward. E is new
(Adam, betas 0.9/0.99 as appendix B), G continues from stage 2 (Adam, betas 0.5/0.9).

The influence objective is a first-order prediction: it holds for small changes, and alone it is
unbounded below (transformations that make F confidently wrong with large features drive
``s_val . grad l(z~)`` without limit). Measured on MNIST-5k with 100 labels (docs/influence_loop.md):
with appendix B's learning rates (E 1e-2, G 1e-4) the predicted validation loss falls below zero
within 50 steps while the refit one rises from the first evaluation on, and the augmentations turn into
stretched strokes; with 10x smaller rates the refit validation loss first falls, then rises. Hence
three guards, all optional:

* the defaults ``--aug-lr-e 1e-3 --aug-lr-g 1e-5``;
* a proximal term ``--aug-anchor * mean |G(tau) - G_2(tau)|^2`` that keeps G's maps near the
  GAN-pretrained G_2's for the same codes (``--aug-lr-g 0`` fixes G: the ICLR variant);
* model selection on the held-out validation split: every ``--aug-eval-every`` steps the refit
  validation loss is measured and the E, G with the lowest is what ``augmenter.pt`` holds
  (``selected_iteration`` in stage.json; iteration 0 = G_2 with the initial E).

``--aug-gan-weight`` > 0 also adds the stage-2 discriminators' adversarial loss (they keep training),
the paper's realism constraint; at weight 1 it did not stop the runaway of appendix B's rates.

Every ``--aug-eval-every`` steps (and before the first) the whole training set is augmented once (a
fixed dropout draw) and the validation loss is predicted (first order) and measured by refitting F's
last layer: ``predicted_val_loss`` vs ``refit_val_loss`` in metrics.jsonl
(:mod:`~fastaug.train.influence_loop.objective`).
"""
import copy

import torch

from ..batches import endless
from ..loop import Loop, optimizer_step
from ..method import to_float
from ..rng import derive_seed
from .augmenter import displacement
from .objective import influence_objective, last_layer_theta, predicted_vs_refit
from .options import order_seed

__all__ = ["train_augmenter", "evaluate_augmenter"]


@torch.no_grad()
def evaluate_augmenter(augmenter, influence, train_batches, val_features, seed):
    """Predicted vs refit validation loss for the whole (un-augmented) training set replaced by its
    learned augmentation, one dropout draw from a generator seeded by ``seed``.

    ``train_batches``: list of (x float, y) in the order of the influence's cached training features."""
    model, g = influence.model, torch.Generator().manual_seed(seed)
    h_aug, z_aug = [], []
    for x, _ in train_batches:
        h = model.features(augmenter(x, rng=g))
        h_aug.append(h)
        z_aug.append(model.fc(h))
    return predicted_vs_refit(influence, torch.cat(h_aug), torch.cat(z_aug), *val_features, last_layer_theta(model.fc))


class _Best:
    """The evaluated E, G with the lowest refit validation loss so far (a checkpoint part)."""

    def __init__(self):
        self.iteration, self.refit_val_loss, self.state = None, None, None

    def offer(self, iteration, refit_val_loss, augmenter):
        if self.state is None or refit_val_loss < self.refit_val_loss:
            self.iteration, self.refit_val_loss = iteration, refit_val_loss
            self.state = {k: v.detach().clone() for k, v in augmenter.state_dict().items()}

    def state_dict(self):
        return {"iteration": self.iteration, "refit_val_loss": self.refit_val_loss, "state": self.state}

    def load_state_dict(self, state):
        self.iteration, self.refit_val_loss, self.state = state["iteration"], state["refit_val_loss"], state["state"]


def train_augmenter(folder, augmenter, critics, influence, train_data, standard, val_features, options, args, device,
                    stage_options=None, log=print):
    """Run (or continue) stage 4 on the loop primitive, training ``augmenter`` (E and G) in place;
    returns ``(metrics, seconds)``.

    Args:
        folder: the stage's folder (``checkpoint.pt``, ``metrics.jsonl``).
        augmenter: an Augmenter with G from stage 2 (E freshly initialised); G as given is the anchor of
            the proximal term.
        critics: stage 2's :class:`~fastaug.train.influence_loop.gan.Critics` (used and trained when
            ``--aug-gan-weight`` > 0).
        influence: stage 3's LastLayerInfluence (model = the frozen F, s_val cached).
        train_data: the training images (the influence's cached training set): ImageData, or a FolderData
            decoded by ``--workers`` DataLoader processes.
        standard: :class:`fastaug.augment.standard.StandardAugment` (its crop/flip is applied first).
        val_features: (h, logits, y) of the validation split through F.
        options: the run's :class:`~fastaug.train.influence_loop.options.InfluenceOptions` (``--aug-*``,
            ``--stage-*``); args: the resolved common arguments (``--seed``, ``--eval-batch-size``,
            ``--progress``).
        stage_options: the stage's options (checked when its checkpoint is resumed).

    On return ``augmenter`` holds the evaluated E, G with the lowest refit validation loss.
    """
    from ...data import make_batches
    from .classifier import float_batches

    o, seed = options, args.seed
    anchor = copy.deepcopy(augmenter.generator).requires_grad_(False)  # stage 2's G, before any resume
    opt_e = torch.optim.Adam(augmenter.encoder.parameters(), lr=o.aug_lr_e, betas=(0.9, 0.99))
    opt_g = torch.optim.Adam(augmenter.generator.parameters(), lr=o.aug_lr_g, betas=(0.5, 0.9))
    rng = torch.Generator().manual_seed(derive_seed(seed, "augmenter-loop"))
    adversarial = o.aug_gan_weight > 0
    best = _Best()
    loop = Loop(folder, name="stage 4 (E, G)", options=stage_options, allowed_changes=(), epochs=1,
                steps_per_epoch=o.aug_iters, checkpoint_every=o.stage_checkpoint_every, log_every=o.stage_log_every,
                step_key="iteration", resume="auto", progress=args.progress, show=("mean_influence",), log=log,
                distributed=False)
    loop.register("augmenter", augmenter)
    loop.register("encoder_optimizer", opt_e)
    loop.register("generator_optimizer", opt_g)
    if adversarial:
        loop.register("critics", critics)
        loop.register("critics_optimizer", critics.optimizer)
    loop.register("loop_rng", rng, per_rank=True)
    loop.register("best", best)
    resumed = loop.resume()
    eval_batches = float_batches(train_data, args.eval_batch_size, device, args.workers)
    batches = make_batches(train_data, o.aug_batch_size, device, seed=order_seed(seed, "augmenter-order"),
                           workers=args.workers)
    stream = endless(batches, loop.global_step)
    eval_seed = derive_seed(seed, "augmenter-eval")

    def evaluate(iteration):
        record = {"iteration": iteration, **evaluate_augmenter(augmenter, influence, eval_batches, val_features,
                                                               eval_seed)}
        loop.record(record)
        best.offer(iteration, record["refit_val_loss"], augmenter)

    if not resumed:
        evaluate(0)
    loop.every(o.aug_eval_every, evaluate)  # after the step's log record, before its checkpoint
    H, W = augmenter.height, augmenter.width
    try:
        for _ in loop.steps():
            x, y = next(stream)
            x = to_float(standard.crop_flip(x, rng))
            codes = augmenter.codes(x, rng)
            params = augmenter.params(codes)
            x_aug = augmenter.apply(x, params)
            influence_loss = influence_objective(influence, x, x_aug, y)
            loss, extra = influence_loss, {}
            if o.aug_anchor > 0:  # the trust region: G's maps stay near stage 2's for the same codes
                with torch.no_grad():
                    params0 = augmenter.params(codes.detach(), anchor)
                drift = (params - params0).square().mean()
                loss, extra = loss + o.aug_anchor * drift, {"anchor_drift": drift.detach()}
            if adversarial:  # the discriminators keep judging G's outputs against the standard-augmented images
                d_losses = critics.step(x, x_aug, rng)
                g_adv, g_losses = critics.generator_loss(x, x_aug)
                loss, extra = loss + o.aug_gan_weight * g_adv, {**extra, **d_losses, **g_losses}
            optimizer_step(loss, (opt_g, opt_e))  # one backward, two optimisers (E and G learn at their own rates)
            with torch.no_grad():
                loop.meters.add(mean_influence=influence_loss.detach(), mse_to_input=(x_aug - x).square().mean(),
                                displacement_px=displacement(params, H, W).square().sum(1).sqrt().mean(), **extra)
    finally:
        stream.close()
        batches.close()  # a folder dataset's workers stop before the next stage starts its own
    if not loop.done:
        loop.end_epoch()
    loop.write_metrics()
    augmenter.load_state_dict(best.state)
    evals = [r for r in loop.history if "refit_val_loss" in r]
    first, last = evals[0], evals[-1]
    chosen = next(r for r in evals if r["iteration"] == best.iteration)
    return {"val_loss": first["val_loss"], "selected_iteration": best.iteration,
            "mean_influence_before": first["mean_influence"], "mean_influence_after": last["mean_influence"],
            "mean_influence_selected": chosen["mean_influence"],
            "predicted_val_loss_before": first["predicted_val_loss"], "refit_val_loss_before": first["refit_val_loss"],
            "predicted_val_loss_after": last["predicted_val_loss"], "refit_val_loss_after": last["refit_val_loss"],
            "predicted_val_loss_selected": chosen["predicted_val_loss"],
            "refit_val_loss_selected": chosen["refit_val_loss"]}, loop.seconds
