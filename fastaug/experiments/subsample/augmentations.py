"""The paper's deterministic augmentation sets f_T(z) (appendix B), batched through ``fastaug.warp``.

Every augmentation maps one image to a fixed, ordered set of ``count`` transformed images; all of
them are applied exhaustively to every selected point (and to every test image: the "poisoned" test
set). Each transform is an affine resampling written as a per-pixel displacement field, so a whole
batch of images times all transforms is one :func:`fastaug.warp` call (bilinear sampling, the
authors' imgaug ``order=1``), run on the images' device in 0..255 float and rounded back to uint8
(the authors augment uint8 arrays).

=============  ==========================================  ===========================================
name           MNIST (28x28, mnist5k)                      CIFAR-size images (32x32 and larger)
=============  ==========================================  ===========================================
translate      +-2 px left, right, up, down (4 images)     +-3 px in the four directions (4 images)
translate_diag (+-2, +-2) px: the four diagonal shifts the authors' code applies (augmentations.py,
               ``transform_translate``) although the paper says "cardinal directions" (4 images)
rotate         the 15 angles evenly spaced in [-30, 30]    +-5, +-2.5 degrees (4 images)
               degrees without 0 (14 images)
crop           crop 1, 2, ..., 6 px from every side and    crop 2 px from every side, zoom back
               zoom back to 28x28 (6 images)               (1 image)
=============  ==========================================  ===========================================

Conventions (where the paper is silent, the authors' imgaug calls):

* translate / rotate: ``iaa.Affine(..., mode="edge")``: pixels that come from outside the image
  repeat the border (``padding_mode="border"``). A translation by (tx, ty) moves the content right
  by tx and down by ty; integer shifts sample exactly, so translate is bit-exact.
* rotate: about the image centre ((W-1)/2, (H-1)/2) in pixel-index coordinates, positive angles
  counter-clockwise on screen, as ``PIL.Image.rotate`` (the angle sets are symmetric anyway).
* crop k: the central (H-2k) x (W-2k) window, zoomed back to H x W by bilinear interpolation with
  ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``'s convention: output
  pixel j samples the window at ``(j + 0.5) * (W - 2k) / W - 0.5``, clamped to the window, so only
  pixels of the window contribute. (The authors' imgaug 0.2 ``Crop(keep_size=True)`` resized with
  OpenCV's INTER_AREA, which is close to nearest-neighbour when enlarging; bilinear is smoother.)
"""
import dataclasses
import math

import torch

from ...ops.warp import warp

__all__ = ["AUGMENTATIONS", "Augmentation", "build_augmentation", "translate_flows", "rotate_flows",
           "crop_flows", "augment_all"]

AUGMENTATIONS = ("translate", "translate_diag", "rotate", "crop")


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """A fixed set of ``count`` resamplings; ``apply`` maps (N, C, H, W) uint8 -> (N, count, C, H, W) uint8.

    Attributes:
        name: one of :data:`AUGMENTATIONS`.
        params: the transforms' parameters, one per output image (shifts (tx, ty), angles in
            degrees, or crop sizes in pixels).
        description: human-readable summary (written to the outputs).
    """

    name: str
    params: tuple
    description: str

    @property
    def count(self):
        return len(self.params)

    def flows(self, height, width, device=None, dtype=torch.float32):
        """(count, 2, H, W) displacement fields in pixels (channel 0 = x, 1 = y), computed in float64."""
        if self.name in ("translate", "translate_diag"):
            return translate_flows(self.params, height, width, device, dtype)
        if self.name == "rotate":
            return rotate_flows(self.params, height, width, device, dtype)
        return crop_flows(self.params, height, width, device, dtype)

    def apply(self, images, chunk_size=8192):
        """(N, C, H, W) uint8 -> (N, count, C, H, W) uint8: every transform of every image, in
        batches of ``chunk_size`` output images (one warp call each), on the images' device."""
        return augment_all(images, self.flows(images.shape[-2], images.shape[-1], images.device), chunk_size)


def _grid(height, width, device):
    ys = torch.arange(height, dtype=torch.float64, device=device)
    xs = torch.arange(width, dtype=torch.float64, device=device)
    return torch.meshgrid(ys, xs, indexing="ij")


def translate_flows(shifts, height, width, device=None, dtype=torch.float32):
    """Shifts [(tx, ty), ...] in pixels -> (K, 2, H, W): output (i, j) reads input (i - ty, j - tx)."""
    t = torch.as_tensor(shifts, dtype=dtype, device=device).reshape(-1, 2)
    return (-t)[:, :, None, None].expand(t.shape[0], 2, height, width).contiguous()


def rotate_flows(angles, height, width, device=None, dtype=torch.float32):
    """Angles in degrees -> (K, 2, H, W): rotation about the centre, counter-clockwise on screen.

    Output pixel (x, y) reads input ``c + R (p - c)`` with ``R = [[cos, -sin], [sin, cos]]`` in image
    coordinates (y down), the inverse map ``PIL.Image.rotate`` uses.
    """
    y, x = _grid(height, width, device)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    flows = []
    for angle in angles:
        a = math.radians(float(angle))
        c, s = math.cos(a), math.sin(a)
        xin = cx + c * (x - cx) - s * (y - cy)
        yin = cy + s * (x - cx) + c * (y - cy)
        flows.append(torch.stack([xin - x, yin - y]))
    return torch.stack(flows).to(dtype) if flows else torch.zeros(0, 2, height, width, dtype=dtype, device=device)


def crop_flows(crops, height, width, device=None, dtype=torch.float32):
    """Crop sizes k in pixels -> (K, 2, H, W): the central window zoomed back (bilinear, half-pixel centres)."""
    y, x = _grid(height, width, device)
    flows = []
    for k in crops:
        k = int(k)
        if not 0 < 2 * k < min(height, width):
            raise ValueError(f"crop of {k} px from every side does not fit a {height}x{width} image")
        sx, sy = (width - 2 * k) / width, (height - 2 * k) / height
        xin = (k + (x + 0.5) * sx - 0.5).clamp(k, width - 1 - k)
        yin = (k + (y + 0.5) * sy - 0.5).clamp(k, height - 1 - k)
        flows.append(torch.stack([xin - x, yin - y]))
    return torch.stack(flows).to(dtype) if flows else torch.zeros(0, 2, height, width, dtype=dtype, device=device)


def augment_all(images, flows, chunk_size=8192):
    """Warp every image by every flow: (N, C, H, W) uint8 and (K, 2, H, W) -> (N, K, C, H, W) uint8.

    Rows are image-major (all K transforms of image 0 first). Sampling in 0..255 float and rounding
    to nearest keeps integer shifts exact.
    """
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise TypeError(f"images must be (N, C, H, W) uint8, got {tuple(images.shape)} {images.dtype}")
    N, C, H, W = images.shape
    K = flows.shape[0]
    out = torch.empty(N, K, C, H, W, dtype=torch.uint8, device=images.device)
    if N == 0 or K == 0:
        return out
    flows = flows.to(images.device, torch.float32)
    per = max(1, int(chunk_size) // K)  # source images per warp call
    for start in range(0, N, per):
        x = images[start:start + per].float()
        n = x.shape[0]
        xs = x[:, None].expand(n, K, C, H, W).reshape(n * K, C, H, W)
        fs = flows[None].expand(n, K, 2, H, W).reshape(n * K, 2, H, W)
        y = warp(xs, fs, padding_mode="border")
        out[start:start + n] = y.round_().clamp_(0, 255).to(torch.uint8).view(n, K, C, H, W)
    return out


def _mnist_like(dataset, height):
    return dataset == "mnist5k" or (dataset is None and height <= 28)


def build_augmentation(name, dataset=None, image_size=28):
    """The paper's augmentation ``name`` for ``dataset`` (MNIST parameters for mnist5k or images of
    28 px or less, the CIFAR parameters otherwise; see the module docstring)."""
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {', '.join(AUGMENTATIONS)}")
    mnist = _mnist_like(dataset, image_size)
    if name in ("translate", "translate_diag"):
        d = 2 if mnist else 3
        if name == "translate":
            shifts = ((d, 0), (-d, 0), (0, d), (0, -d))
            desc = f"translate by {d} px right, left, down, up (edge padding)"
        else:
            shifts = ((d, d), (-d, d), (d, -d), (-d, -d))
            desc = f"translate by (+-{d}, +-{d}) px, the four diagonals (edge padding)"
        return Augmentation(name, shifts, desc)
    if name == "rotate":
        if mnist:
            angles = tuple(a for a in (-30 + 60 * i / 14 for i in range(15)) if abs(a) > 1e-9)
        else:
            angles = (-5.0, -2.5, 2.5, 5.0)
        return Augmentation(name, angles, "rotate by " + ", ".join(f"{a:g}" for a in angles)
                            + " degrees (bilinear, edge padding)")
    crops = (1, 2, 3, 4, 5, 6) if mnist else (2,)
    return Augmentation(name, crops, "crop " + ", ".join(map(str, crops))
                        + " px from every side and zoom back (bilinear)")
