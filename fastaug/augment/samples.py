"""How the policy modules find the image in a torchvision-style sample and put the result back.

A policy module may be called on a bare image or on a whole sample, as ``torchvision.transforms.v2``
transforms are: ``m(img)``, ``m(img, label)``, ``m((img, label))``, ``m({"image": img, ...})``.
The image is picked with torchvision's rule (``v2.Transform._needs_transform_list``): a
``tv_tensors.Image`` / ``Video`` or PIL image if the sample has one, otherwise the first plain tensor
in depth-first order; everything else (labels, extra tensors) passes through untouched. Boxes,
masks and keypoints are refused, as torchvision's own AutoAugment refuses them (the ops would move
pixels without moving them).

Images may be (C, H, W), (N, C, H, W) or carry more leading dimensions; they are augmented as
(N', C, H, W) with N' the product of the leading dimensions (one independent draw per image) and
returned with the input's shape and type.
"""
import sys

import numpy as np
import torch
from torch.utils import _pytree as pytree
from ..ops._validate import data_checks_off

__all__ = ["split_sample", "join_sample", "to_batch", "check_unit_range", "cpu_half_as_float", "frames_per_draw"]


def _tv_tensors():
    """torchvision.tv_tensors if torchvision is already imported, else None (never imports it:
    if torchvision was not imported, no tv_tensor can exist)."""
    if "torchvision" not in sys.modules:
        return None
    try:
        from torchvision import tv_tensors
    except ImportError:  # torchvision older than 0.16
        return None
    return tv_tensors


def _is_pil(obj):
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(obj, pil.Image)


def split_sample(inputs, who):
    """Flatten a sample and locate its image.

    Args:
        inputs: the positional arguments of ``forward`` (one sample, or a sample's parts).
        who: the module's name, for error messages.

    Returns:
        (flat, spec, idx): the flattened leaves, the tree spec and the index of the image leaf.
    """
    if not inputs:
        raise TypeError(f"{who}() needs an image (or a sample containing one)")
    flat, spec = pytree.tree_flatten(inputs if len(inputs) > 1 else inputs[0])
    tv = _tv_tensors()
    explicit = []
    for i, leaf in enumerate(flat):
        if (tv is not None and isinstance(leaf, (tv.Image, tv.Video))) or _is_pil(leaf):
            explicit.append(i)
        elif tv is not None and isinstance(leaf, tv.TVTensor):
            raise TypeError(f"Inputs of type {type(leaf).__name__} are not supported by {who}() (its geometric ops "
                            "would move the pixels but not the annotations); augment the image alone, or replay "
                            "its parameters with params=")
    if len(explicit) > 1:
        raise TypeError(f"{who}() augments a single image per sample, found {len(explicit)} images")
    if explicit:
        return flat, spec, explicit[0]
    for i, leaf in enumerate(flat):
        if isinstance(leaf, torch.Tensor):
            return flat, spec, i
    raise TypeError(f"{who}() found no image in the sample (expected a tensor, a tv_tensors.Image or a PIL image), "
                    f"got leaves of types {sorted({type(l).__name__ for l in flat})}")


def join_sample(flat, spec, idx, image):
    """Put the augmented image back at leaf ``idx`` and rebuild the sample's structure."""
    flat = list(flat)
    flat[idx] = image
    return pytree.tree_unflatten(flat, spec)


def to_batch(img):
    """View an image leaf as an (N', C, H, W) plain tensor.

    Returns:
        (x, restore): x the batch, and ``restore(out)`` mapping an (N', C, H, W) result back to the
        input's shape and type (the same tensor subclass, or a PIL image of the same mode).
    """
    if _is_pil(img):
        if img.mode not in ("L", "RGB"):
            raise ValueError(f"PIL images must have mode 'L' or 'RGB', got {img.mode!r}")
        a = np.asarray(img)
        a = a[..., None] if a.ndim == 2 else a
        x = torch.from_numpy(a.copy()).permute(2, 0, 1).unsqueeze(0)
        mode = img.mode
        pil = sys.modules["PIL.Image"]

        def restore_pil(out):
            arr = out[0].permute(1, 2, 0).cpu().numpy()
            return pil.fromarray(arr[..., 0] if mode == "L" else arr)  # uint8 (H, W) -> "L", (H, W, 3) -> "RGB"

        return x, restore_pil
    if img.dim() < 3:
        raise ValueError(f"images must have shape (C, H, W), (N, C, H, W) or (..., C, H, W), got {tuple(img.shape)}")
    shape, cls = img.shape, type(img)
    plain = img.as_subclass(torch.Tensor) if cls is not torch.Tensor else img
    x = plain.reshape((-1,) + tuple(shape[-3:]))

    def restore(out):
        out = out.reshape(shape)
        if cls is torch.Tensor:
            return out
        tv = _tv_tensors()
        if tv is not None and isinstance(img, tv.TVTensor):
            return tv.wrap(out, like=img)
        return out.as_subclass(cls)

    return x, restore


def check_unit_range(x, who):
    """Float images must lie in [0, 1]: the ops' blends clamp to that range, so normalised images
    (e.g. after ``v2.Normalize``) would be silently clipped. One host synchronisation."""
    if not x.is_floating_point() or data_checks_off(x):
        return
    lo, hi = (float(v) for v in torch.stack(torch.aminmax(x)).tolist())
    if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
        raise ValueError(f"{who}(): float images must have values in [0, 1], got values in [{lo:g}, {hi:g}]. Apply "
                         "the policy before normalising, or scale with v2.ToDtype(torch.float32, scale=True); "
                         "uint8 images are accepted as they are")


def cpu_half_as_float(x):
    """float16 / bfloat16 images on the CPU as float32 (the policy ops take half floats on CUDA only, as
    torchvision's functionals take them everywhere); any other x as it is. The caller casts the result
    back to x's dtype."""
    if x.device.type == "cpu" and x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def frames_per_draw(img):
    """How many consecutive images of :func:`to_batch`'s batch share one draw: a ``tv_tensors.Video``
    (..., T, C, H, W) gets one draw per video, applied to its T frames, as torchvision's transforms give a
    video one draw for all its frames (a frame per op would make the clip flicker); 1 for anything else."""
    tv = _tv_tensors()
    if tv is None or not isinstance(img, tv.Video) or img.dim() < 4 or img.shape[-4] == 0:
        return 1
    return int(img.shape[-4])
