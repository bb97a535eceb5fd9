"""Load the compiled core ``fastaug._C`` with one clear sentence when it cannot be used."""
import torch

REBUILD = "rebuild it with `pip install --no-build-isolation -e .` (or `bash scripts/quickstart.sh test`)"


def load_extension():
    """Import and return ``fastaug._C`` (which registers the ``torch.ops.fastaug`` operators)."""
    try:
        from . import _built_with
    except ImportError:
        _built_with = None
    if _built_with is not None and _built_with.TORCH_VERSION != torch.__version__:
        raise ImportError(
            f"fastaug was compiled against torch {_built_with.TORCH_VERSION} but torch {torch.__version__} "
            f"is installed; {REBUILD}."
        )
    try:
        from . import _C
    except ImportError as err:
        text = str(err)
        if "undefined symbol" in text or "version" in text.lower():
            raise ImportError(
                f"fastaug's compiled extension does not match the installed torch {torch.__version__}; {REBUILD}."
            ) from None
        if "No module named" in text:
            raise ImportError(f"fastaug's compiled extension fastaug._C is missing; {REBUILD}.") from None
        raise
    return _C
