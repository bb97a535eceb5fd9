"""``fastaug.augment.load``: a learned augmentation back from its file, as an ``nn.Module``.

Every learned augmentation is one artifact (:mod:`fastaug.artifacts`: weights only, written atomically)
of kind ``"augmentation/<name>"``, conventionally ``augmentation.pt`` in a run folder:

| kind | module | what it applies |
|---|---|---|
| ``augmentation/adversarial`` | :class:`~fastaug.augment.ControllerAugment` | a policy per image from Adversarial AutoAugment's controller |
| ``augmentation/random`` | :class:`~fastaug.augment.RandomPolicyAugment` | uniformly random ops per image (the ablation) |
| ``augmentation/fixed`` | :class:`~fastaug.augment.FixedAugment` | the standard recipe only |
| ``augmentation/tanda`` | :class:`~fastaug.augment.SequenceAugment` | TANDA's generated op sequences |
| ``augmentation/influence`` | :class:`~fastaug.augment.TransformAugment` | the influence loop's learned transformation |
| ``augmentation/translation`` | :class:`~fastaug.augment.SubgroupTranslation` | model patching's subgroup translations |

The meta of each holds ``channels``, ``image_size``, ``value_range``, ``standard`` (the crop/flip/Cutout
recipe the run trained with around the learned part, or None), ``options`` (the kind's), whatever the
writer added (``dataset``, ``quality``...), and for ``adversarial`` its ``frozen_policy``; the artifact's
header records the fastaug version that wrote it. The influence loop's own ``augmenter.pt`` (kind
``"influence-augmenter"``) loads too, as the augmenter alone.
"""
import os

from ..artifacts import ArtifactError, load_artifact
from .influence_augmenter import AUGMENTER_FILE, AUGMENTER_KIND
from .learned_module import AUGMENTATION_FILE, KIND_PREFIX
from .learned_policies import ControllerAugment, FixedAugment, RandomPolicyAugment
from .learned_sequences import SequenceAugment
from .learned_transform import TransformAugment
from .learned_translation import SubgroupTranslation

__all__ = ["load", "augmentation_file", "save_augmentation", "KINDS", "AUGMENTATION_FILE"]

#: Artifact kind -> module class of every learned augmentation.
KINDS = {cls.kind(): cls for cls in (ControllerAugment, RandomPolicyAugment, FixedAugment, SequenceAugment,
                                     TransformAugment, SubgroupTranslation)}


def augmentation_file(path):
    """The file :func:`load` reads for ``path``: ``path`` itself, or in a folder its ``augmentation.pt``,
    else the influence loop's ``augmenter.pt`` (a stage folder such as ``stage2_gan/``); a folder holding
    neither is one sentence (ArtifactError)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return path
    file = os.path.join(path, AUGMENTATION_FILE)
    if not os.path.exists(file) and os.path.exists(os.path.join(path, AUGMENTER_FILE)):
        file = os.path.join(path, AUGMENTER_FILE)  # an influence-loop stage folder (stage2_gan/): its augmenter
    if not os.path.exists(file):
        raise ArtifactError(f"{path} is a folder without {AUGMENTATION_FILE} (looked for {file}): the run did not "
                            f"finish, or its method learns no augmentation")
    return file


def load(path, device=None, standard=True):
    """The learned augmentation in ``path`` as an ``nn.Module`` (eval mode).

    Args:
        path: an augmentation file, or a run folder (its ``augmentation.pt`` is read; a folder without one
            but with the influence loop's ``augmenter.pt``, e.g. ``stage2_gan/``, gives that augmenter alone).
        device: where to put the module (default: the CPU).
        standard: False leaves out the standard crop/flip/Cutout recipe the run trained with around the
            learned part (for a pipeline that crops and flips on its own).

    Raises:
        fastaug.artifacts.ArtifactError (a ValueError), one sentence naming the file: a folder without
        ``augmentation.pt``, a missing, torn or pickle file, a file of another kind or format, a layout
        version this fastaug does not read, or damaged contents.
    """
    path = augmentation_file(path)
    art = load_artifact(None, path)
    if art.kind == AUGMENTER_KIND:
        try:
            module = TransformAugment.from_augmenter_file(art)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ArtifactError(f"{path} is a damaged {art.kind!r} artifact ({type(err).__name__})") from err
    else:
        cls = KINDS.get(art.kind)
        if cls is None:
            raise ArtifactError(f"{path} is a {art.kind!r} artifact, not a learned augmentation (kinds "
                                f"{', '.join(k[len(KIND_PREFIX):] for k in KINDS)})")
        if art.version != cls.version:
            raise ArtifactError(f"{path} is a {art.kind!r} artifact of layout version {art.version}, which this "
                                f"fastaug reads only at version {cls.version}: it was written by fastaug "
                                f"{art.fastaug_version}")
        module = cls.from_artifact(art, standard=standard)
    return module if device is None else module.to(device)


def save_augmentation(module, path, meta=None):
    """``module.save(path, meta)``: write a learned augmentation as one artifact; returns ``path``."""
    return module.save(path, meta)
