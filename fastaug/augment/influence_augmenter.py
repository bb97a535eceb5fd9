"""The influence loop's learned augmentation: x -> clamp(transform(x, G(dropout(E(x)))), 0, 1).

E and G are :class:`fastaug.augment.Encoder` / :class:`fastaug.augment.Generator` (appendix A);
this module adds what the loop needs around them:

* dropout on tau drawn from a ``torch.Generator`` (``nn.Dropout`` would draw from the global stream,
  which a resumed run could not replay): a Bernoulli(1 - p) mask scaled by 1/(1 - p), as nn.Dropout;
* the appearance part switched off for grey images unless asked for (CVPR 4.2: "for grey images,
  the appearance transformation model is not considered"): G's colour channels are zeroed;
* the output clamped to [0, 1], the range of every image the classifier sees (real or augmented);
* ``augmenter.pt``: E's and G's weights with the configuration to rebuild them (:meth:`save`,
  :meth:`load`), an ``"influence-augmenter"`` artifact (:mod:`fastaug.artifacts`; files in the
  earlier ``"fastaug-augmenter-1"`` format still load).

It lives here, below the training code, because the trained augmenter is an augmentation users load
and apply (:class:`fastaug.augment.TransformAugment`); the influence loop
(:mod:`fastaug.train.influence_loop`) imports it from here.
"""
import torch
from torch import nn

from ..artifacts import ArtifactError, load_artifact, save_artifact
from ..ops.transform import SPATIAL_CHANNELS, transform
from .learned import Encoder, Generator

__all__ = ["Augmenter", "displacement", "random_codes", "AUGMENTER_KIND", "AUGMENTER_FILE"]

#: The artifact kind of ``augmenter.pt``.
AUGMENTER_KIND = "influence-augmenter"
#: The influence loop's file of its augmenter alone (E and G), in its run folder and stage folders.
AUGMENTER_FILE = "augmenter.pt"
_LEGACY_FORMAT = "fastaug-augmenter-1"  # augmenter.pt before the artifact format (still read)


def displacement(params, height, width):
    """Displacement of G's raw spatial maps, ``S_w u + s_b`` (eq. 20 without the identity), in pixels.

    Args:
        params: (N, 6 + ..., H, W) raw parameter maps (channels s_w 0-3, s_b 4-5).
    Returns:
        (N, 2, H, W): x then y displacement in pixels (unsmoothed maps: the box smoothing of
        :func:`fastaug.transform` averages this over a k x k window).
    """
    dev, dt = params.device, params.dtype
    uy = ((2 * torch.arange(height, device=dev, dtype=dt) + 1) / height - 1)[:, None]
    ux = ((2 * torch.arange(width, device=dev, dtype=dt) + 1) / width - 1)[None, :]
    dx = params[:, 0] * ux + params[:, 1] * uy + params[:, 4]
    dy = params[:, 2] * ux + params[:, 3] * uy + params[:, 5]
    return torch.stack([dx * (width / 2), dy * (height / 2)], 1)


def random_codes(n, tau_dim, rng, device=None, dtype=torch.float32):
    """Codes for G without E (stage 2): uniform in (-1, 1)^tau_dim, the range of E's tanh, drawn from
    the CPU torch.Generator ``rng``."""
    return (torch.rand(n, tau_dim, generator=rng, dtype=dtype) * 2 - 1).to(device)


class Augmenter(nn.Module):
    """E and G with seeded dropout on tau; ``forward(x, rng)`` is the learned augmentation.

    ``generator`` is the network G; every random draw comes from an ``rng`` argument (a CPU
    torch.Generator), never named after G.

    Args:
        channels, height, width: the images' shape.
        tau_dim: size of tau (128 in the paper).
        dropout: probability of zeroing each entry of tau (0.5 in the paper), applied whenever a
            ``rng`` is passed.
        appearance: use G's colour maps (False zeroes them: spatial transformation only).
        smooth, mode, padding_mode: passed to :func:`fastaug.transform`.
    """

    def __init__(self, channels, height, width=None, tau_dim=128, dropout=0.5, appearance=True, smooth=4,
                 mode="parallel", padding_mode="zeros"):
        super().__init__()
        width = height if width is None else width
        self.encoder = Encoder(channels, height, width, tau_dim)
        self.generator = Generator(channels, height, width, tau_dim)
        self.channels, self.height, self.width, self.tau_dim = channels, height, width, tau_dim
        self.dropout, self.appearance = float(dropout), bool(appearance)
        self.smooth, self.mode, self.padding_mode = smooth, mode, padding_mode

    def config(self):
        return dict(channels=self.channels, height=self.height, width=self.width, tau_dim=self.tau_dim,
                    dropout=self.dropout, appearance=self.appearance, smooth=self.smooth, mode=self.mode,
                    padding_mode=self.padding_mode)

    def dropout_mask(self, n, rng, device=None, dtype=torch.float32):
        """(n, tau_dim) inverted-dropout mask: 0 with probability p, else 1/(1 - p); drawn on the CPU."""
        keep = torch.rand(n, self.tau_dim, generator=rng) >= self.dropout
        return (keep.to(dtype) / (1.0 - self.dropout)).to(device)

    def params(self, codes, generator_net=None):
        """G's raw parameter maps for codes (N, tau_dim): (N, 6 + C*C + C, H, W), colour maps zeroed
        without appearance. ``generator_net``: another G of the same shape to use instead (e.g. a frozen
        copy)."""
        params = (generator_net or self.generator)(codes)
        if not self.appearance:
            params = torch.cat([params[:, :SPATIAL_CHANNELS], torch.zeros_like(params[:, SPATIAL_CHANNELS:])], 1)
        return params

    def apply(self, x, params):
        """The transformation of x (N, C, H, W) by given raw maps, clamped to [0, 1]."""
        out = transform(x, params.to(x.dtype), smooth=self.smooth, mode=self.mode, padding_mode=self.padding_mode)
        return out.clamp(0.0, 1.0)

    def codes(self, x, rng=None):
        """tau = E(x), with a dropout mask from ``rng`` when one is given (N, tau_dim)."""
        tau = self.encoder(x)
        if rng is not None and self.dropout > 0:
            tau = tau * self.dropout_mask(x.shape[0], rng, tau.device, tau.dtype)
        return tau

    def forward(self, x, rng=None, codes=None, return_params=False):
        """x (N, C, H, W) float in [0, 1] -> augmented (N, C, H, W) in [0, 1] (and the raw maps).

        ``codes`` given: G(codes) (E skipped, no dropout added); otherwise G(dropout(E(x))), the
        dropout drawn from ``rng`` (None: no dropout)."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.channels, self.height, self.width):
            raise ValueError(f"x must have shape (N, {self.channels}, {self.height}, {self.width}), "
                             f"got {tuple(x.shape)}")
        params = self.params(self.codes(x, rng) if codes is None else codes)
        out = self.apply(x, params)
        return (out, params) if return_params else out

    @torch.no_grad()
    def parts(self, x, codes):
        """For figures: the flow (N, 2, H, W) in pixels, the spatially transformed image, the colour
        change and the final image, for x (N, C, H, W) and codes (N, tau_dim)."""
        params = self.params(codes)
        spatial = params.clone()
        spatial[:, SPATIAL_CHANNELS:] = 0
        warped = self.apply(x, spatial)
        colour_only = params.clone()
        colour_only[:, :SPATIAL_CHANNELS] = 0
        source = warped if self.mode == "serial" else x
        colour_change = transform(source, colour_only.to(x.dtype), smooth=self.smooth) - source
        k = self.smooth
        flow = displacement(torch.nn.functional.avg_pool2d(
            torch.nn.functional.pad(params[:, :SPATIAL_CHANNELS], ((k - 1) // 2, k // 2) * 2, mode="replicate"), k, 1),
            self.height, self.width)
        return {"flow": flow, "spatial": warped, "colour_change": colour_change, "final": self.apply(x, params)}

    # ---- augmenter.pt -----------------------------------------------------------------------------
    def save(self, path, meta=None):
        """Write E's and G's weights and :meth:`config` to ``path`` as an ``"influence-augmenter"``
        artifact (atomically); ``meta``: more JSON-able description (provenance) kept beside the config.
        Returns ``path``."""
        return save_artifact(AUGMENTER_KIND, {"encoder": self.encoder.state_dict(), "generator": self.generator.state_dict()},
                      path, meta={**(meta or {}), "config": self.config()})

    @classmethod
    def load(cls, path, device="cpu"):
        """Rebuild an Augmenter from ``augmenter.pt`` (an artifact, or the earlier ``"fastaug-augmenter-1"``
        file); anything else raises :class:`~fastaug.artifacts.ArtifactError` (a ValueError) in one sentence."""
        try:
            art = load_artifact(AUGMENTER_KIND, path)
            config, state = art.meta.get("config"), art.state
        except ArtifactError:
            state = _legacy(path)
            if state is None:
                raise
            config = state["config"]
        if not isinstance(config, dict):
            raise ArtifactError(f"{path} is a damaged {AUGMENTER_KIND!r} artifact (no config in its meta)")
        aug = cls(**config)
        aug.encoder.load_state_dict(state["encoder"])
        aug.generator.load_state_dict(state["generator"])
        return aug.to(device)


def _legacy(path):
    """The dict of an ``augmenter.pt`` in the earlier ``"fastaug-augmenter-1"`` format, else None."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # the artifact loader's sentence says what is wrong with the file
        return None
    return state if isinstance(state, dict) and state.get("format") == _LEGACY_FORMAT else None
