"""The paper's MNIST table at this machine's scale: test error of ``none``, ``standard`` and
``influence`` on MNIST-5k with few labels, several seeds, plus the time of every stage of the influence runs.

    python -m fastaug.experiments.influence_mnist_table --labels 100 --seeds 0 1 2 --out runs/influence-mnist
    python -m fastaug.experiments.influence_mnist_table --labels 500 --seeds 0 1 2 --out runs/influence-mnist
    python -m fastaug.experiments.influence_mnist_table --report --out runs/influence-mnist   # the tables only

Every run is an ordinary ``python -m fastaug train`` in ``<out>/<labels>/<method>-s<seed>``; a finished run
(summary.json) is skipped and an interrupted one resumed, so the table can be built in batches. All rows
of a seed hold out the same ``--val-size`` validation digits first and draw the same class-balanced
labelled subset from the rest (``--data-seed`` = the seed); only ``influence`` uses the validation digits.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

METHODS = ("none", "standard", "influence")
#: Epochs of the classifier per labelled-set size (sized for a 2-core CPU; 1 or 4 steps per epoch).
EPOCHS = {100: 60, 500: 30}
INFLUENCE = ["--gan-iters", "100", "--gan-batch-size", "64", "--aug-iters", "100", "--aug-batch-size", "64"]


def command(labels, method, seed, out, val_size):
    cmd = [sys.executable, "-m", "fastaug", "train", "--dataset", "mnist5k", "--model", "allconv",
           "--train-size", str(labels), "--val-size", str(val_size), "--epochs", str(EPOCHS.get(labels, 30)),
           "--augment", method, "--seed", str(seed), "--output-dir", run_dir(out, labels, method, seed),
           "--no-progress", "--resume"]  # --resume continues an interrupted run and starts a new one
    return cmd + (INFLUENCE if method == "influence" else [])


def run_dir(out, labels, method, seed):
    return os.path.join(out, str(labels), f"{method}-s{seed}")


def _load(path):
    with open(path) as f:
        return json.load(f)


def _mean_std(values):
    m = sum(values) / len(values)
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, s


def report(out, labels_list, seeds):
    lines = ["| labelled digits | method | test error % (mean ± std) | seeds | per seed |", "|---|---|---|---|---|"]
    times = ["| labelled digits | seed | stage 1 s | stage 2 s | stage 3 s | stage 4 s | stage 5 s | total s |",
             "|---|---|---|---|---|---|---|---|"]
    checks = ["| labelled digits | seed | G's displacement after stage 2 (px) | stage 4 selected iteration | "
              "mean I_aug (selected) | val loss of F (stage 3) | predicted | refit last layer | "
              "val loss of retrained F (stage 5) |", "|---|---|---|---|---|---|---|---|---|"]
    for labels in labels_list:
        per_seed = {}
        for method in METHODS:
            for seed in seeds:
                path = os.path.join(run_dir(out, labels, method, seed), "summary.json")
                if os.path.isfile(path):
                    per_seed.setdefault(method, {})[seed] = 100 * (1 - _load(path)["final_test_acc"])
            errs = list(per_seed.get(method, {}).values())
            if errs:
                m, s = _mean_std(errs)
                lines.append(f"| {labels} | {method} | {m:.2f} ± {s:.2f} | {len(errs)} | "
                             f"{', '.join(f'{e:.1f}' for e in errs)} |")
        both = sorted(set(per_seed.get("influence", {})) & set(per_seed.get("standard", {})))
        if both:  # the same labelled digits and initialisation per seed: a paired difference
            diffs = [per_seed["influence"][k] - per_seed["standard"][k] for k in both]
            m, s = _mean_std(diffs)
            lines.append(f"| {labels} | influence − standard (paired by seed) | {m:+.2f} ± {s:.2f} | {len(diffs)} | "
                         f"{', '.join(f'{d:+.1f}' for d in diffs)} |")
        for seed in seeds:
            path = os.path.join(run_dir(out, labels, "influence", seed), "stages.json")
            if not os.path.isfile(path):
                continue
            st = _load(path)
            secs = [st.get(str(k), {}).get("seconds") for k in range(1, 6)]
            times.append(f"| {labels} | {seed} | " + " | ".join("" if v is None else f"{v:.1f}" for v in secs)
                         + f" | {sum(v for v in secs if v):.0f} |")
            s2, s3, s4, s5 = (st.get(str(k), {}) for k in (2, 3, 4, 5))
            if "refit_val_loss_selected" in s4 and s5:
                checks.append(f"| {labels} | {seed} | {s2['displacement_px']:.2f} | {s4['selected_iteration']} | "
                              f"{s4['mean_influence_selected']:.3f} | "
                              f"{s3['val_loss']:.3f} | {s4['predicted_val_loss_selected']:.3f} | "
                              f"{s4['refit_val_loss_selected']:.3f} | {s5['val_loss']:.3f} |")
    return "\n".join(lines), "\n".join(times), "\n".join(checks)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", type=int, nargs="+", default=[100, 500], help="labelled training digits (100 500)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (0 1 2)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--val-size", type=int, default=100, help="validation digits held out for every row (100)")
    p.add_argument("--out", default="runs/influence-mnist", help="folder of the runs and table.md")
    p.add_argument("--report", action="store_true", help="only print the tables of the finished runs")
    args = p.parse_args(argv)
    if not args.report:
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        for labels in args.labels:
            for seed in args.seeds:
                for method in args.methods:
                    d = run_dir(args.out, labels, method, seed)
                    if os.path.isfile(os.path.join(d, "summary.json")):
                        continue
                    cmd = command(labels, method, seed, args.out, args.val_size)
                    tick = time.time()
                    print(" ".join(cmd), flush=True)
                    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
                    print(f"  {time.time() - tick:.0f} s", flush=True)
    errors, times, checks = report(args.out, args.labels, args.seeds)
    text = (f"{errors}\n\nStage times of the influence runs (seconds):\n\n{times}\n\n"
            f"Validation loss of the influence runs: F (stage 3), predicted for F with the selected augmenter "
            f"(first order) and measured by refitting its last layer (stage 4), and the retrained F (stage 5):"
            f"\n\n{checks}\n")
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
