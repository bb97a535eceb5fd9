"""The one rule every fastaug layer follows for its per-pixel maps: passed in, or predicted by its head."""
import torch


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
