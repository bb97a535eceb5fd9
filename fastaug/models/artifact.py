"""A trained classifier as an artifact (:mod:`fastaug.artifacts`, kind ``classifier``): its weights and
what rebuilds it (the model's name, classes, channels, normalisation), so a later stage or a user
loads it without knowing the run that trained it."""
from ..artifacts import load_artifact, save_artifact

__all__ = ["KIND", "save_classifier", "load_classifier"]

KIND = "classifier"


def save_classifier(model, name, path, meta=None):
    """Write ``model`` (a :class:`~fastaug.models.Classifier` built by ``build_model(name, ...)``) to
    ``path`` atomically; ``meta``: provenance (dataset, image size, options...). Returns ``path``."""
    rebuild = {"model": name, "num_classes": int(model.num_classes), "channels": int(model.in_channels),
               "mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist()}
    return save_artifact(KIND, {"model": model.state_dict()}, path, meta={**rebuild, **(meta or {})})


def load_classifier(path, device="cpu"):
    """The classifier of a ``classifier`` artifact, on ``device`` (ArtifactError, one sentence, for any
    other file)."""
    from . import build_model

    art = load_artifact(KIND, path)
    m = art.meta
    model = build_model(m["model"], m["num_classes"], m["channels"], mean=m["mean"], std=m["std"])
    model.load_state_dict(art.state["model"])
    return model.to(device)
