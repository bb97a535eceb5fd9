"""The one rule every fastaug layer follows for its per-pixel maps: passed in, or predicted by its head."""
import torch

from ..ops._validate import check_float_image


def given_or_predicted(layer, given, x, context):
    """Return ``given`` when passed, else ``layer.head(context if context is not None else x)``.

    Args:
        layer: the calling module; ``layer.head`` is its optional head (``None`` = no head).
        given: the map(s) passed to ``forward`` (a tensor, or a tuple whose entries are all
            tensors or all ``None``), ``None`` when the caller passed none.
        x: (N, C, H, W) image, the head's input when ``context`` is ``None``.
        context: optional tensor the head reads instead of ``x`` (e.g. moving and fixed images
            concatenated along channels in registration).

    Raises:
        ValueError: when neither or both of a map and a head are there, which would be ambiguous.
    """
    name = type(layer).__name__
    if given is not None:
        if layer.head is not None:
            raise ValueError(f"{name} has a head that predicts its maps, so forward() must not be given them too")
        if context is not None:
            raise ValueError(f"{name}: context is the head's input, but this call passes the maps directly")
        return given
    if layer.head is None:
        raise ValueError(f"{name} has no head, so forward() needs its maps (see the docstring)")
    out = layer.head(x if context is None else context)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name}'s head must return one (N, K, H, W) tensor, got {type(out).__name__}")
    return out


def map_pair(layer, a, b, names, sizes, x, context, what=""):
    """The two maps of a layer that takes two (``AffineFlowWarp``'s s_w, s_b; ``Appearance``'s c_w, c_b).

    Args:
        layer, x, context: as for :func:`given_or_predicted`.
        a, b: the maps passed to ``forward``: both tensors, or both ``None`` (then the head predicts
            one (N, sizes[0] + sizes[1], H, W) tensor, split along channels in that order).
        names: the two maps' names, for errors; sizes: their channel counts.
        what: words after "(N, K, H, W) maps" in the head's shape error (e.g. "for a 3-channel image").

    Returns: ``(a, b)``.
    """
    name = type(layer).__name__
    if (a is None) != (b is None):
        raise ValueError(f"{name} needs both {names[0]} and {names[1]}, or neither (then its param_head predicts them)")
    if a is not None:
        given_or_predicted(layer, a, x, context)  # refuses maps given to a layer that has a head
        return a, b
    maps = given_or_predicted(layer, None, x, context)
    k = sizes[0] + sizes[1]
    if maps.dim() != 4 or maps.shape[1] != k:
        # An x that is not an (N, C, H, W) image (one (C, H, W) image: a Conv2d head takes it too) makes
        # the head's output wrong as well: name x, as the op would, not the head.
        check_float_image(x)
        raise ValueError(f"{name}'s param_head must return (N, {k}, H, W) maps {what}({names[0]} {sizes[0]}, then "
                         f"{names[1]} {sizes[1]}), got {tuple(maps.shape)}")
    return maps[:, :sizes[0]], maps[:, sizes[0]:]
