"""Influence-driven learned augmentation: the full loop of the learning-to-augment-influential-data paper.

``fastaug train --augment influence --val-size 100`` runs five stages (ICLR 3.3-4.3, CVPR 4.3):

1. train the classifier F with the standard augmentation (``--augment standard``, on the engine);
2. pretrain G as a GAN so its transformations mimic the standard crop/flip: an image-space
   discriminator (appendix A) and a feature-space one (a linear layer on F's last-layer features),
   RaGAN (``--gan wgan-gp`` for the ICLR variant), the ICLR term against the identity;
3. fit last-layer influence on F over the training set and cache ``s_val = H^-1 grad L_val`` from the
   held-out validation split (``--val-size``);
4. train E and G, with dropout 0.5 on tau, to lower the predicted validation loss through the frozen
   F: minimise ``mean I_aug`` (the sign convention: :mod:`.objective`);
5. retrain F from scratch with the standard augmentation plus samples of E and G (dropout kept).

Stages are checkpointed and resumable one by one, ``--stages`` runs a subset and finished stages are
reused (:mod:`.pipeline` lists the folders and files). The 2-D toy of the paper's Figure 3 is
:mod:`fastaug.experiments.toy2d` (``fastaug toy2d``). Modules: ``options`` (flags), ``augmenter`` (E, G, seeded dropout,
augmenter.pt), ``objective`` (the influence objective and its checks), ``classifier`` (stages 1, 3),
``gan`` (stage 2), ``augment_stage`` (stage 4), ``method`` (stage 5, ``--augment influence``),
``stages`` (stages 1-4 as :class:`fastaug.train.pipeline.Stage` objects and the five-stage pipeline),
``figures`` (the toy's figure too).
"""
from .augmenter import Augmenter
from .method import InfluenceAugment, LearnedRetrain
from .objective import influence_objective

__all__ = ["Augmenter", "InfluenceAugment", "LearnedRetrain", "influence_objective"]
