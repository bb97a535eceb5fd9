"""Pillow references of the policy ops (docs/design.md K3), on HWC uint8 numpy images.

``pillow_op`` applies one op the way the AutoAugment papers' Pillow code does; ``pillow_apply_ops``
applies a whole batch of chains with it; ``check_chain`` verifies a whole chain of
:func:`fastaug.apply_ops` step by step against it.
"""
import math

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

import fastaug  # noqa: F401  (registers torch.ops.fastaug)
from fastaug.ops.policy import OP_NAMES

GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
#: Ops whose uint8 result equals Pillow's exactly; the blends are within +-1 (fastaug rounds, Pillow truncates).
EXACT = GEOMETRIC + ("AutoContrast", "Invert", "Equalize", "Solarize", "Posterize", "Cutout")
BLENDS = ("Contrast", "Color", "Brightness", "Sharpness", "SamplePairing")


def to_pil(a):
    """HWC uint8 array (C = 1 or 3) -> PIL image ("L" or "RGB")."""
    return Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)


def to_np(im):
    """PIL image -> HWC uint8 array."""
    a = np.asarray(im)
    return a[..., None] if a.ndim == 2 else a


def pillow_op(name, a, m, s, partner_img=None, center=None, fill=128):
    """The Pillow reference of op `name` at magnitude m (float32 value) and sign s on HWC uint8 a."""
    im = to_pil(a)
    H, W = a.shape[:2]
    m = float(m)
    fillc = fill if a.shape[2] == 1 else (fill,) * 3
    f = float(np.float32(1.0) + np.float32(s) * (np.float32(0.9) * np.float32(m)))
    if name == "ShearX":
        return to_np(im.transform(im.size, Image.AFFINE, (1, s * (0.3 * m), 0, 0, 1, 0), Image.NEAREST, fillcolor=fillc))
    if name == "ShearY":
        return to_np(im.transform(im.size, Image.AFFINE, (1, 0, 0, s * (0.3 * m), 1, 0), Image.NEAREST, fillcolor=fillc))
    if name == "TranslateX":
        v = s * ((150.0 / 331.0 * W) * m)
        return to_np(im.transform(im.size, Image.AFFINE, (1, 0, v, 0, 1, 0), Image.NEAREST, fillcolor=fillc))
    if name == "TranslateY":
        v = s * ((150.0 / 331.0 * H) * m)
        return to_np(im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, v), Image.NEAREST, fillcolor=fillc))
    if name == "Rotate":
        return to_np(im.rotate(s * (30.0 * m), resample=Image.NEAREST, fillcolor=fillc))
    if name == "AutoContrast":
        return to_np(ImageOps.autocontrast(im))
    if name == "Invert":
        return to_np(ImageOps.invert(im))
    if name == "Equalize":
        return to_np(ImageOps.equalize(im))
    if name == "Solarize":
        return to_np(ImageOps.solarize(im, 256.0 * (1.0 - m)))
    if name == "Posterize":
        return to_np(ImageOps.posterize(im, 8 - int(torch.tensor(4.0 * m).round())))
    if name == "Contrast":
        return to_np(ImageEnhance.Contrast(im).enhance(f))
    if name == "Color":
        return to_np(ImageEnhance.Color(im).enhance(f))
    if name == "Brightness":
        return to_np(ImageEnhance.Brightness(im).enhance(f))
    if name == "Sharpness":
        return to_np(ImageEnhance.Sharpness(im).enhance(f))
    if name == "Cutout":
        k = int(math.floor(0.2 * min(H, W) * m + 0.5))
        out = a.copy()
        y0, x0 = center[0] - k // 2, center[1] - k // 2
        out[max(y0, 0):max(y0 + k, 0), max(x0, 0):max(x0 + k, 0)] = fill
        return out
    if name == "SamplePairing":
        return to_np(Image.blend(im, to_pil(partner_img), float(np.float32(0.4) * np.float32(m))))
    raise KeyError(name)


def pillow_apply_ops(x, op, magnitude, sign, partner, center, fill=128):
    """The whole of ``fastaug.apply_ops`` by Pillow alone: each image's chain (op (N, L) or (N,)) applied
    step by step with :func:`pillow_op`, SamplePairing mixing with the partner's input image. Float
    images in [0, 1] are quantised to uint8 for Pillow and the result scaled back."""
    dt, dev = x.dtype, x.device
    x8 = x.cpu() if dt == torch.uint8 else (x.cpu().double() * 255).round().to(torch.uint8)
    if op.dim() == 1:  # one op per image: a chain of length 1
        op, magnitude, sign, partner, center = op[:, None], magnitude[:, None], sign[:, None], partner[:, None], \
            center[:, None]
    inputs = [x8[n].permute(1, 2, 0).numpy() for n in range(x8.shape[0])]
    cur = list(inputs)
    for l in range(op.shape[1]):
        for n in range(len(cur)):
            o = int(op[n, l])
            if o >= 0:
                cur[n] = pillow_op(OP_NAMES[o], cur[n], magnitude[n, l].item(), sign[n, l].item(),
                                   inputs[int(partner[n, l])], center[n, l].tolist(), fill)
    out = torch.stack([torch.from_numpy(a.copy()).permute(2, 0, 1) for a in cur]) if cur else x8.clone()
    return (out if dt == torch.uint8 else out.to(dt) / 255).to(dev)


def check_chain(x, out, prm, fill=128):
    """Assert that ``out`` is the chain of ``prm`` (a PolicyParams, leading (N, L)) applied to uint8
    ``x`` (N, C, H, W), verified step by step against Pillow.

    Each step l is compared with Pillow applied to fastaug's result of steps < l, so a +-1 blend
    difference cannot be amplified by a later histogram op (Equalize) into a spurious failure;
    the last step must equal ``out``. SamplePairing mixes with the partner's *input* image.
    """
    x, out = x.cpu(), out.cpu()
    op, mag, sign = prm.op.cpu(), prm.magnitude.cpu(), prm.sign.cpu()
    partner, center = prm.partner.cpu(), prm.center.cpu()
    N, L = op.shape
    inputs = [x[n].permute(1, 2, 0).numpy() for n in range(N)]
    cur = x
    for l in range(L):
        # The raw op: its second argument is the batch SamplePairing reads (the chain's input x).
        step = torch.ops.fastaug.apply_ops(cur, x, *(t[:, l:l + 1].contiguous() for t in (op, mag, sign, partner,
                                                                                           center)), fill)
        for n in range(N):
            o = int(op[n, l])
            a = cur[n].permute(1, 2, 0).numpy()
            if o < 0:
                ref = a
            else:
                name = OP_NAMES[o]
                ref = pillow_op(name, a, mag[n, l].item(), sign[n, l].item(), inputs[int(partner[n, l])],
                                center[n, l].tolist(), fill)
            tol = 0 if o < 0 or OP_NAMES[o] in EXACT else 1
            got = step[n].permute(1, 2, 0).numpy()
            diff = np.abs(got.astype(int) - ref.astype(int)).max()
            assert diff <= tol, f"image {n} step {l} ({'identity' if o < 0 else OP_NAMES[o]}, m={mag[n, l]:.3f}): " \
                                f"max diff {diff} from Pillow"
        cur = step
    assert torch.equal(cur, out), "the output is not the last step of the chain"
