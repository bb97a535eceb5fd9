"""LastLayerInfluence: fit once on a model's last linear layer and a data loader, then HVPs, iHVP
solves, s_val, influence scores, influence of augmentation and self-influence (docs/design.md K4)."""
import torch
import torch.nn as nn

from ..artifacts import load_artifact, save_artifact
from ..ops._validate import check_finite, check_labels
from ..ops.influence import influence_aug as _influence_aug
from . import scores as _scores
from .hessian import LastLayerHessian, with_bias_column
from .solvers import METHODS, solve as _solve


def find_last_linear(model, last_layer=None):
    """The layer to use: ``last_layer`` itself (an nn.Linear), the submodule named ``last_layer``, or
    (None) the last nn.Linear registered in ``model``."""
    if isinstance(last_layer, nn.Linear):
        return last_layer
    if isinstance(last_layer, str):
        try:
            layer = model.get_submodule(last_layer)
        except AttributeError as err:
            raise ValueError(f"last_layer: model has no submodule named {last_layer!r}") from err
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"last_layer {last_layer!r} must be an nn.Linear, got {type(layer).__name__}")
        return layer
    if last_layer is not None:
        raise TypeError(f"last_layer must be None, a submodule name or an nn.Linear, got {type(last_layer).__name__}")
    if model is None:
        raise ValueError("pass a model (or use LastLayerInfluence.from_features)")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("model has no nn.Linear layer; pass last_layer=")
    return linears[-1]


class _Capture:
    """Forward hook that records the last layer's input (features) and output (logits)."""

    def __init__(self, layer):
        self.h = self.z = None
        self.handle = layer.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.h, self.z = inputs[0], output

    def remove(self):
        self.handle.remove()


def _batch_xy(batch):
    if isinstance(batch, dict):
        return batch["x"] if "x" in batch else batch["image"], batch["y"] if "y" in batch else batch["label"]
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise TypeError("the data loader must yield (x, y) pairs (or dicts with 'x'/'y')")


class LastLayerInfluence:
    """Influence functions of the last linear layer ``z = W h + b`` of a classifier (or ``z = W h``: a
    layer built with ``bias=False`` has the parameters W only, and every (C, D+1) below is (C, D)).

    Usage::

        inf = LastLayerInfluence(model, damping=1e-3).fit(train_loader)
        inf.s_val(val_loader)                 # s_val = H^-1 grad L_val, cached
        scores = inf.influence_up_loss()      # I_up,loss(z_i, val) for every training point
        loo = inf.self_influence()            # g_i^T H^-1 g_i for every training point
        i_aug = inf.influence_aug(x, x_aug, y)  # differentiable in x_aug through the frozen model

    The model is only run forward (in eval mode, restored afterwards); the features ``h`` are the
    last layer's input and the logits its output, captured by a forward hook. Everything is cached in
    ``dtype`` (float64 by default) on ``device`` (the layer's device by default).

    Args:
        model: any nn.Module whose last layer is an nn.Linear (None with :meth:`from_features`).
        last_layer: that layer, its submodule name, or None (the last nn.Linear in ``model``).
        damping: lambda >= 0 of ``H + lambda I`` (the L2 coefficient of an L2-regularised objective).
        method: default solver, "exact" | "cg" | "lissa"; None picks "exact" when
            ``num_params <= max_exact_params`` and "cg" otherwise.
        max_exact_params: size cap of the exact solver (it forms the num_params x num_params Hessian,
            ``num_params = C*(D+1)``, or ``C*D`` without a bias).
        progress: tqdm progress bars on passes over data.
        bias: whether the layer has a bias (parameters ``[W b]``, or ``W`` only). None: read from the
            layer (``layer.bias is not None``), True without a layer (:meth:`from_features`); a value
            that contradicts the layer raises ValueError.
    """

    def __init__(self, model=None, last_layer=None, *, damping=0.01, dtype=torch.float64, device=None,
                 method=None, max_exact_params=20000, progress=True, bias=None):
        damping = float(damping)
        if not damping >= 0 or damping == float("inf"):
            raise ValueError(f"damping must be a finite number >= 0, got {damping}")
        if method is not None and method not in METHODS:
            raise ValueError(f"method must be one of {METHODS} or None, got {method!r}")
        self.model = model
        self.layer = find_last_linear(model, last_layer) if (model is not None or last_layer is not None) else None
        has_bias = self.layer.bias is not None if self.layer is not None else True
        if bias is not None and self.layer is not None and bool(bias) != has_bias:
            raise ValueError(f"bias={bias} contradicts the last layer, which has "
                             f"{'a bias' if has_bias else 'no bias (bias=False)'}")
        #: whether the parameters are ``[W b]`` (C, D+1) or ``W`` alone (C, D).
        self.bias = has_bias if bias is None else bool(bias)
        self.damping, self.dtype, self.method = damping, dtype, method
        self.max_exact_params, self.progress = int(max_exact_params), progress
        self.device = torch.device(device) if device is not None else (
            self.layer.weight.device if self.layer is not None else torch.device("cpu"))
        self.h = self.logits = self.y = self.hessian = None
        self.s_val_ = None
        self.solve_info = None

    # ---- fitting ------------------------------------------------------------------------------
    @torch.no_grad()
    def features(self, loader, desc="features"):
        """Run the model over ``loader``; return (h (N, D), logits (N, C), y (N,)) in the cache dtype."""
        if self.model is None:
            raise ValueError("this LastLayerInfluence has no model; pass features directly")
        hs, zs, ys = [], [], []
        cap = _Capture(self.layer)
        was_training = self.model.training
        self.model.eval()
        try:
            it = loader
            if self.progress:
                from tqdm.auto import tqdm

                it = tqdm(loader, desc=desc, unit="batch", leave=False)
            for batch in it:
                x, y = _batch_xy(batch)
                dev = self.layer.weight.device
                self.model(x.to(dev))
                if cap.h is None or cap.h.dim() != 2:
                    raise ValueError("the last layer's input must be (batch, D) features, got "
                                     f"{None if cap.h is None else tuple(cap.h.shape)}")
                hs.append(cap.h.to(self.device, self.dtype))
                zs.append(cap.z.to(self.device, self.dtype))
                ys.append(torch.as_tensor(y).to(self.device, torch.int64))
        finally:
            cap.remove()
            self.model.train(was_training)
        if not hs:
            raise ValueError("the data loader is empty")
        return torch.cat(hs), torch.cat(zs), torch.cat(ys)

    def fit(self, train_loader):
        """Cache features, logits, labels and probabilities of the training set; build the Hessian."""
        h, z, y = self.features(train_loader, desc="training features")
        return self._set_train(h, z, y)

    @classmethod
    def from_features(cls, h, logits, y, **kwargs):
        """Build from cached training features (N, D), last-layer logits (N, C) and labels (N,);
        ``bias=False`` for a last layer without a bias."""
        inf = cls(None, None, device=h.device, **kwargs)
        return inf._set_train(h.to(inf.dtype), logits.to(inf.dtype), y)

    def _set_train(self, h, z, y):
        check_finite(h, "h")
        check_finite(z, "logits")
        check_labels(y, h.shape[0], z.shape[1], "y")
        self.h, self.logits, self.y = h, z, y
        self.hessian = LastLayerHessian(h, torch.softmax(z, 1), damping=self.damping, bias=self.bias)
        return self

    def _need_fit(self):
        if self.hessian is None:
            raise RuntimeError("call fit(train_loader) (or from_features) first")

    @property
    def num_params(self):
        self._need_fit()
        return self.hessian.num_params

    def _method(self, method):
        method = method or self.method or ("exact" if self.num_params <= self.max_exact_params else "cg")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        return method

    # ---- Hessian ------------------------------------------------------------------------------
    def hvp(self, v):
        """(H + lambda I) v for v of shape (C, D+1) or (K, C, D+1) ((C, D) / (K, C, D) without a bias)."""
        self._need_fit()
        return self.hessian.matvec(v.to(self.device, self.dtype))

    def solve(self, b, method=None, **kwargs):
        """H^-1 b for b of shape (C, D+1) or (K, C, D+1) ((C, D) / (K, C, D) without a bias); details of
        the solve in ``self.solve_info``.

        kwargs go to the solver (see :mod:`fastaug.influence.solvers`); "exact" honours
        ``max_exact_params``.
        """
        self._need_fit()
        method = self._method(method)
        if method == "exact":
            kwargs.setdefault("max_params", self.max_exact_params)
        x, self.solve_info = _solve(self.hessian, b.to(self.device, self.dtype), method, **kwargs)
        return x

    # ---- scores -------------------------------------------------------------------------------
    def s_val(self, val_loader=None, *, h=None, logits=None, y=None, method=None, **kwargs):
        """s_val = H^-1 grad_Theta L(z_val) (mean validation loss), (C, D+1) ((C, D) without a bias);
        cached as ``self.s_val_``.

        Give a loader (run through the model) or cached validation ``h``, ``logits``, ``y``.
        """
        self._need_fit()
        if val_loader is not None:
            h, logits, y = self.features(val_loader, desc="validation features")
        elif h is None or logits is None or y is None:
            raise ValueError("s_val needs a val_loader or all of h, logits and y")
        g = _scores.mean_gradient(h.to(self.device, self.dtype), logits.to(self.device, self.dtype),
                                  y.to(self.device), bias=self.bias)
        self.s_val_ = self.solve(g, method, **kwargs)
        return self.s_val_

    def _need_s_val(self):
        if self.s_val_ is None:
            raise RuntimeError("call s_val(val_loader) first")

    def influence_up_loss(self, train=None):
        """I_up,loss(z_i, val) = -s_val^T grad l(z_i), (N,), for the cached training set (``train=None``),
        a data loader, or an ``(h, logits, y)`` tuple. Removing z_i changes the validation loss by
        about ``-I_up,loss / N``."""
        self._need_s_val()
        if train is None:
            h, z, y = self.h, self.logits, self.y
        elif isinstance(train, (tuple, list)) and len(train) == 3 and all(isinstance(t, torch.Tensor) for t in train):
            h, z, y = (t.to(self.device) for t in train)
            h, z = h.to(self.dtype), z.to(self.dtype)
        else:
            h, z, y = self.features(train, desc="scoring features")
        return _scores.influence_up_loss(h, z, y, self.s_val_)

    def influence_aug(self, x, x_aug, y):
        """I_aug(z_i, z~_i, val) = -s_val^T (grad l(z~_i) - grad l(z_i)), (N,), differentiable with respect
        to ``x_aug`` (through the model, which is run forward in eval mode, restored afterwards, on the
        layer's device; freeze its parameters yourself). Replacing
        z_i by z~_i changes the validation loss by about ``+I_aug / N`` (the paper's eq. 15): negative values
        predict a lower validation loss."""
        self._need_s_val()
        if self.model is None:
            raise ValueError("influence_aug needs a model; use influence_aug_features with cached features")
        dev = self.layer.weight.device
        x, x_aug = x.to(dev), x_aug.to(dev)
        cap = _Capture(self.layer)
        was_training = self.model.training
        self.model.eval()  # BatchNorm uses its running statistics and must not update them
        try:
            with torch.no_grad():
                self.model(x)
                h, z = cap.h, cap.z
            self.model(x_aug)
            h_aug, z_aug = cap.h, cap.z
        finally:
            cap.remove()
            self.model.train(was_training)
        return self.influence_aug_features(h, z, h_aug, z_aug, y)

    def influence_aug_features(self, h, logits, h_aug, logits_aug, y):
        """:meth:`influence_aug` on features and logits (differentiable in all of them)."""
        self._need_s_val()
        s = self.s_val_.to(h.device)
        if not self.bias:  # the op's layout: a zero bias column scores grad_W l alone
            s = with_bias_column(s)
        y = torch.as_tensor(y).to(h.device, torch.int64)
        if h.device.type == "cpu":  # the CPU kernels want one dtype; CUDA takes half features as they are
            h, logits, h_aug, logits_aug = (t.to(s.dtype) for t in (h, logits, h_aug, logits_aug))
        else:
            s = s.float() if s.dtype == torch.float64 and h.dtype != torch.float64 else s
        return _influence_aug(h, logits, h_aug, logits_aug, y, s)

    def self_influence(self, method=None, batch_size=None, **kwargs):
        """Leave-one-out self-influence g_i^T H^-1 g_i (>= 0) of every training point, (N,). Removing z_i
        raises its own loss by about ``self_influence_i / N`` (the data-subsampling paper's |I_LOO|)."""
        self._need_fit()
        method = self._method(method)
        if method == "exact":
            kwargs.setdefault("max_params", self.max_exact_params)
        return _scores.self_influence(self.hessian, self.y, method=method, batch_size=batch_size,
                                      progress=self.progress, **kwargs)

    def losses(self):
        """Training loss of every cached training point, (N,)."""
        self._need_fit()
        return _scores.per_sample_loss(self.logits, self.y)

    # ---- persistence --------------------------------------------------------------------------
    def state_dict(self):
        return {"h": self.h, "logits": self.logits, "y": self.y, "s_val": self.s_val_, "damping": self.damping,
                "dtype": str(self.dtype).replace("torch.", ""), "method": self.method,
                "max_exact_params": self.max_exact_params, "bias": self.bias, "version": 1}

    #: The artifact kind of :meth:`save` (:mod:`fastaug.artifacts`).
    KIND = "last-layer-influence"

    def save(self, path, meta=None):
        """Write the cached training features, logits, labels and s_val to ``path`` as a
        ``last-layer-influence`` artifact (atomic, weights-only; damping, dtype, solver and bias in its meta,
        with ``meta``'s entries: provenance such as the dataset). Returns ``path``."""
        self._need_fit()
        state = self.state_dict()
        return save_artifact(self.KIND, {k: state[k] for k in ("h", "logits", "y", "s_val")}, path,
                             meta={**{k: state[k] for k in ("damping", "dtype", "method", "max_exact_params", "bias")},
                                   "points": int(self.h.shape[0]), **(meta or {})})

    @classmethod
    def load(cls, path, model=None, last_layer=None, *, device=None, progress=True):
        """Inverse of :meth:`save` (:class:`~fastaug.artifacts.ArtifactError`, one sentence, for a file
        that is not such an artifact); pass the model again to use :meth:`influence_aug` / new loaders.
        Artifacts written before ``bias`` was recorded are layers with a bias."""
        art = load_artifact(cls.KIND, path, map_location=device or "cpu")
        state, meta = art.state, art.meta
        bias = bool(meta.get("bias", True))
        layer = find_last_linear(model, last_layer) if (model is not None or last_layer is not None) else None
        if layer is not None and (layer.bias is not None) != bias:
            raise ValueError(f"{path} was fitted on a last layer {'with' if bias else 'without'} a bias, but the "
                             f"given model's last layer has {'one' if layer.bias is not None else 'none'}")
        inf = cls(model, last_layer, damping=meta["damping"], dtype=getattr(torch, meta["dtype"]),
                  device=device or state["h"].device, method=meta["method"],
                  max_exact_params=meta["max_exact_params"], progress=progress, bias=bias)
        inf._set_train(state["h"], state["logits"], state["y"])
        inf.s_val_ = state["s_val"]
        return inf
