"""Stage 2: pretrain G as a GAN so that its transformations mimic the standard augmentation.

Two discriminators judge G's output ``x~ = G(x, tau)`` (tau = dropout of a code uniform in (-1, 1),
the range of E's tanh, so that G sees the codes of stages 4-5) against the standard augmentation of
the same images:

* ``D_img``: appendix A's image discriminator (:class:`fastaug.augment.Discriminator`);
* ``D_feat``: one linear layer over the frozen classifier F's last-layer features (CVPR 4.3).

Losses (``--gan``): ``ragan``, the relativistic average standard GAN of the CVPR version,
``D: BCE(C(r) - mean C(f), 1) + BCE(C(f) - mean C(r), 0)``, ``G: BCE(C(f) - mean C(r), 1) +
BCE(C(r) - mean C(f), 0)``; or ``wgan-gp`` (ICLR version): ``D: mean C(f) - mean C(r) + w * GP``,
``G: -mean C(f)``, 5 critic steps per G step. Matching the *standard-augmented* images (not the
originals) is the CVPR trick against the identity solution; the ICLR version adds the inverse MSE to
the identity in image and flow space to G's loss, ``w * (1 / (eps + MSE(x~, x)) + 1 / (eps + mean
|displacement|^2))`` (displacement in pixels), used in both variants here (``--identity-weight``;
eps bounds it by ``2 w / eps`` at the identity).

The target of the GAN is the geometric part of the standard augmentation (random crop, and flips where the
dataset allows): what a smooth spatial transformation can express. Cutout is applied after G in
stage 5, as after any policy.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ...artifacts import load_artifact, save_artifact
from ...augment.learned import Discriminator
from ..method import to_float
from ..rng import derive_seed
from .augmenter import displacement, random_codes
from ..batches import endless
from ..loop import Loop, optimizer_step
from .options import order_seed

__all__ = ["ragan_losses", "wgan_losses", "gradient_penalty", "identity_penalty", "Critics", "train_gan"]


def ragan_losses(real, fake):
    """Relativistic average standard GAN: (discriminator loss, generator loss) from scores (N, 1)."""
    r = real - fake.mean()
    f = fake - real.mean()
    ones, zeros = torch.ones_like(r), torch.zeros_like(f)
    d = F.binary_cross_entropy_with_logits(r, ones) + F.binary_cross_entropy_with_logits(f, zeros)
    g = F.binary_cross_entropy_with_logits(f, ones) + F.binary_cross_entropy_with_logits(r, zeros)
    return d, g


def wgan_losses(real, fake):
    """WGAN critic and generator losses (without the gradient penalty)."""
    return fake.mean() - real.mean(), -fake.mean()


def gradient_penalty(critic, real, fake, rng):
    """WGAN-GP: ``mean (||grad critic(e r + (1 - e) f)|| - 1)^2`` with e ~ U(0, 1) per sample (from
    ``rng``); ``real``/``fake`` (N, ...) detached."""
    e = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), generator=rng).to(real.device, real.dtype)
    mix = (e * real + (1 - e) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def identity_penalty(x, x_aug, params, eps):
    """The ICLR term against the identity: ``1/(eps + MSE(x~, x)) + 1/(eps + mean |d|^2)`` with d the
    displacement of G's raw spatial maps in pixels. Largest (2/eps) at the identity."""
    d = displacement(params, x.shape[-2], x.shape[-1])
    return 1.0 / (eps + (x_aug - x).square().mean()) + 1.0 / (eps + d.square().sum(1).mean())


class Critics(nn.Module):
    """The two discriminators and their optimiser: ``image`` (appendix A's D) on images, ``feature`` (one
    linear layer) on the frozen classifier's last-layer features; the GAN loss of ``options.gan``.

    Stage 2 trains them against G; stage 4 keeps training them (with ``--aug-gan-weight`` > 0) so that
    their verdict on G's outputs stays current while E and G follow the influence.
    """

    #: The artifact kind of the trained critics (:meth:`save`, :meth:`load`).
    KIND = "influence-critics"

    def __init__(self, classifier, channels, height, width, options, seed, device):
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # seeded initialisation that leaves the global stream alone
            torch.manual_seed(derive_seed(seed, "gan-discriminators"))
            self.image = Discriminator(channels, height, width)
            self.feature = nn.Linear(classifier.fc.in_features, 1)
        self.to(device)
        self._classifier = [classifier]  # a list: F is not a submodule (not saved, not trained)
        self.wgan = options.gan == "wgan-gp"
        self.losses = wgan_losses if self.wgan else ragan_losses
        self.feature_weight, self.gp_weight = options.gan_feature_weight, options.gan_gp_weight
        self.optimizer = torch.optim.Adam(self.parameters(), lr=options.gan_lr, betas=(0.5, 0.9))  # appendix B

    def save(self, path, meta=None):
        """Both discriminators and their optimiser's state as an ``influence-critics`` artifact."""
        return save_artifact(self.KIND, {"critics": self.state_dict(), "optimizer": self.optimizer.state_dict()},
                             path, meta={"wgan": self.wgan, "feature_weight": self.feature_weight, **(meta or {})})

    def load(self, path):
        """Load what :meth:`save` wrote (ArtifactError, one sentence, for any other file); returns self."""
        state = load_artifact(self.KIND, path).state
        self.load_state_dict(state["critics"])
        self.optimizer.load_state_dict(state["optimizer"])
        return self

    def scores(self, x):
        """(image scores (N, 1), feature scores (N, 1)) of images x."""
        return self.image(x), self.feature(self._classifier[0].features(x))

    def step(self, real, fake, rng):
        """One discriminator update on standard-augmented images ``real`` and G's ``fake`` (detached);
        returns {"d_image", "d_feature"}."""
        fake = fake.detach()
        (ri, rf), (fi, ff) = self.scores(real), self.scores(fake)
        d_img, _ = self.losses(ri, fi)
        d_feat, _ = self.losses(rf, ff)
        loss = d_img + self.feature_weight * d_feat
        if self.wgan and self.gp_weight > 0:
            with torch.no_grad():
                hr, hf = self._classifier[0].features(real), self._classifier[0].features(fake)
            gp = (gradient_penalty(self.image, real, fake, rng)
                  + self.feature_weight * gradient_penalty(self.feature, hr, hf, rng))
            loss = loss + self.gp_weight * gp
        optimizer_step(loss, self.optimizer)
        return {"d_image": d_img.detach(), "d_feature": d_feat.detach()}

    def generator_loss(self, real, fake):
        """G's adversarial loss for ``fake`` (differentiable) against ``real``: (total, {"g_image", "g_feature"})."""
        with torch.no_grad():
            ri, rf = self.scores(real)
        fi, ff = self.scores(fake)
        _, g_img = self.losses(ri, fi)
        _, g_feat = self.losses(rf, ff)
        return g_img + self.feature_weight * g_feat, {"g_image": g_img.detach(), "g_feature": g_feat.detach()}


def train_gan(folder, classifier, augmenter, critics, train_data, target, options, seed, device, stage_options=None,
              progress=True, log=print, workers=4):
    """Run (or continue) stage 2 on the loop primitive; returns ``(metrics, seconds)``. G and the critics
    train in place.

    Args:
        folder: the stage's folder (``checkpoint.pt``, ``metrics.jsonl``).
        classifier: the frozen F (eval mode, parameters not requiring grad).
        augmenter: the :class:`~fastaug.train.influence_loop.augmenter.Augmenter` whose G is trained.
        critics: :class:`Critics` over F.
        train_data: the training images (labels unused): ImageData, or a FolderData decoded by ``workers``
            DataLoader processes.
        target: ``target(x_float, rng) -> x_real``, the augmentation G learns to mimic.
        options: the run's :class:`~fastaug.train.influence_loop.options.InfluenceOptions` (``--gan*``,
            ``--identity-*``, ``--stage-*``); seed: the run's ``--seed``.
        stage_options: the stage's options (checked when its checkpoint is resumed).
    """
    from ...data import make_batches
    from .options import critic_steps

    o = options
    G = augmenter.generator
    H, W = augmenter.height, augmenter.width
    opt_g = torch.optim.Adam(G.parameters(), lr=o.gan_lr, betas=(0.5, 0.9))  # appendix B
    rng = torch.Generator().manual_seed(derive_seed(seed, "gan-loop"))
    n_critic = critic_steps(o)
    loop = Loop(folder, name="stage 2 (GAN)", options=stage_options, allowed_changes=(), epochs=1,
                steps_per_epoch=o.gan_iters, checkpoint_every=o.stage_checkpoint_every, log_every=o.stage_log_every,
                step_key="iteration", resume="auto", progress=progress, show=("d_image", "g_image"), log=log,
                distributed=False)
    loop.register("generator_net", G)
    loop.register("critics", critics)
    loop.register("generator_optimizer", opt_g)
    loop.register("critics_optimizer", critics.optimizer)
    loop.register("loop_rng", rng, per_rank=True)
    loop.resume()
    batches = make_batches(train_data, o.gan_batch_size, device, seed=order_seed(seed, "gan-order"), workers=workers)
    stream = endless(batches, loop.global_step * (n_critic + 1))  # n_critic + 1 batches per iteration

    def fake_of(x):
        codes = random_codes(x.shape[0], augmenter.tau_dim, rng, device, x.dtype)
        codes = codes * augmenter.dropout_mask(x.shape[0], rng, device, x.dtype)
        return augmenter(x, codes=codes, return_params=True)

    try:
        for _ in loop.steps():
            for _ in range(n_critic):
                x = to_float(next(stream)[0])
                with torch.no_grad():
                    fake, _ = fake_of(x)
                d_losses = critics.step(target(x, rng), fake, rng)
            x = to_float(next(stream)[0])
            real = target(x, rng)
            fake, params = fake_of(x)
            adversarial, g_losses = critics.generator_loss(real, fake)
            ident = identity_penalty(x, fake, params, o.identity_eps)
            optimizer_step(adversarial + o.identity_weight * ident, opt_g)
            with torch.no_grad():
                shift = displacement(params, H, W).square().sum(1).sqrt().mean()
                loop.meters.add(**d_losses, **g_losses, identity=ident, displacement_px=shift,
                                mse_to_input=(fake - x).square().mean(), mse_to_standard=(fake - real).square().mean())
    finally:
        stream.close()
        batches.close()  # a folder dataset's workers stop before the next stage starts its own
    if not loop.done:
        loop.end_epoch()
    loop.write_metrics()
    last = loop.history[-1] if loop.history else {}
    return {k: last[k] for k in last if k != "iteration"}, loop.seconds
