"""Train one classifier per method on the same data, print a table, draw a figure.

The README's first command runs it on the embedded MNIST-5k. Each method's run lives in
``<output-dir>/<method>/`` as a normal ``fastaug train`` run; a finished run with the same arguments
is reused and an unfinished one is resumed, so an interrupted comparison continues where it stopped.
Writes ``comparison.json``, ``comparison.md`` (the table), ``comparison.png`` (test accuracy per
epoch) and ``args.json`` (``--config args.json`` reruns the comparison) in ``--output-dir``.
"""
import json
import os

from . import UsageError, is_main_process, write_args

__all__ = ["HELP", "add_arguments", "run", "DEMO_METHODS"]

HELP = "train one classifier per augmentation method and compare them"
CONFLICT_HANDLER = "resolve"  # its own --output-dir (the comparison's folder) replaces train's

#: What ``compare`` runs by default: every ``--augment`` method that trains in minutes on a CPU
#: (``influence`` needs ``--val-size`` and GAN stages, ``autoaugment``'s published policies are for
#: CIFAR/ImageNet; add them with ``--methods``).
DEMO_METHODS = ("none", "standard", "randaugment", "trivialaugment", "uncertainty", "adversarial", "tanda")


def add_arguments(p):
    from ..train.args import build_parser

    build_parser(p)
    p.add_argument("--methods", default=",".join(DEMO_METHODS),
                   help=f"comma-separated --augment methods (default: {','.join(DEMO_METHODS)})")
    p.add_argument("--output-dir", default="runs/compare", help="folder of the comparison (default: runs/compare)")
    p.set_defaults(epochs=None, train_size=None)


def _run_one(args, method, root):
    """One ordinary ``fastaug train`` run of ``method`` in ``root/method``: its namespace holds the
    common options and ``method``'s own only, as ``fastaug train --augment method`` would."""
    from ..train.checkpoint import CheckpointError, FolderInUse
    from ..train.engine import train
    from .train import load_run_data

    a = _method_args(args, method, root)
    try:  # "auto": a finished run resumes with no epochs left (reused), an unfinished one continues
        return train(a, data=load_run_data(a), resume="auto")
    except FolderInUse:  # another comparison is training it now: removing the folder is no advice to give
        raise
    except CheckpointError as err:
        raise CheckpointError(f"{err} (remove {a.output_dir} to rerun {method})") from err


def _method_args(args, method, root):
    """The namespace of ``fastaug train --augment method`` in ``root/method``: the common options and
    ``method``'s own only."""
    from ..train.args import method_option_names, replace_args

    others = (method_option_names() - method_option_names([method])) | {"methods"}
    return replace_args(args, drop=others, augment=method, output_dir=os.path.join(root, method), resume=False)


def _table(rows):
    head = ("| method | final test acc | best test acc | time (s) | of which before training (s) | "
            "images/s | augment share of training |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        share = r["augment_seconds"] / max(r["train_seconds"], 1e-9)
        lines.append(f"| {r['augment']} | {r['final_test_acc']:.4f} | {r['best_test_acc']:.4f} | "
                     f"{r['total_seconds']:.1f} | {r['pretrain_seconds']:.1f} | {r['images_per_second']:.0f} | "
                     f"{100 * share:.1f} % |")
    return "\n".join(lines)


def _figure(root, methods, path, title="fastaug compare"):
    from ..figures import epoch_series, pyplot, save_figure

    fig, ax = pyplot().subplots(figsize=(6.5, 4))
    for m in methods:
        with open(os.path.join(root, m, "metrics.jsonl")) as f:
            hist = [json.loads(line) for line in f if line.strip()]
        epoch_series(ax, [h["epoch"] for h in hist], [h["test_acc"] for h in hist], label=m)
    ax.set(xlabel="epoch", ylabel="test accuracy", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def run(args):
    from ..train import distributed, registry
    from .train import prepare

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in registry.names()]
    if not methods or unknown:
        raise UsageError(f"unknown methods {unknown}; choose from {', '.join(registry.names())}")
    twice = sorted({m for m in methods if methods.count(m) > 1})
    if twice:
        raise UsageError(f"--methods names {', '.join(twice)} more than once (each method is one run in "
                         f"OUTPUT_DIR/<method>)")
    prepare(args)
    root = args.output_dir
    for m in methods:  # every method's arguments checked before the first one trains
        registry.method_class(m).check_args(_method_args(args, m, root))
    rows = []
    say = print if is_main_process() else (lambda *a, **k: None)
    try:
        for i, m in enumerate(methods):
            say(f"[{i + 1}/{len(methods)}] --augment {m}", flush=True)
            summary = _run_one(args, m, root)
            if summary:
                rows.append(summary)
            else:  # e.g. --augment influence --stages 1 2: the method stopped before training a classifier
                say(f"--augment {m} trained no classifier with these arguments: no row", flush=True)
    finally:
        distributed.cleanup()
    if not rows:
        raise UsageError("no method trained a classifier")
    if not is_main_process():
        return 0
    methods = [r["augment"] for r in rows]
    from ..artifacts import atomic_write_text

    table = _table(rows)
    print("\n" + table)
    atomic_write_text(json.dumps(rows, indent=2) + "\n", os.path.join(root, "comparison.json"))
    atomic_write_text(table + "\n", os.path.join(root, "comparison.md"))
    write_args(args, root)
    r = rows[0]
    _figure(root, methods, os.path.join(root, "comparison.png"),
            title=f"fastaug compare: {r['dataset']}, {r['model']}, {r['train_images']} training images")
    print(f"\nwrote {os.path.join(root, 'comparison.md')} and comparison.png")
    return 0
