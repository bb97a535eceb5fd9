"""Training losses that more than one method may use (methods never import each other).

* :mod:`.consistency`: the subgroup consistency loss of model patching (CAMEL / CLAMP).
"""
from .consistency import consistency_loss

__all__ = ["consistency_loss"]
