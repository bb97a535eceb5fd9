"""The Adversarial AutoAugment paper's Table 4 ablation on MNIST-5k with allconv, same epochs for every
method: standard (M=1), fixed, random, adversarial (M=8), tanda; seeds 0 1 2. Two lanes run side by
side (the VM has two cores); each process uses one thread (``OMP_NUM_THREADS=1``, ``nice -n 10``).
Outputs: ``<out>/<method>-s<seed>/`` (ordinary ``fastaug train`` runs) and ``<out>/<method>-s<seed>.log``;
a finished run (summary.json) is skipped and an interrupted one resumed.

    python -m fastaug.experiments.table4 run --out runs/table4      # 15 runs, two lanes
    python -m fastaug.experiments.table4 summary runs/table4         # the Markdown table
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading

__all__ = ["ORDER", "summarise", "run_all"]

ORDER = ("standard", "fixed", "random", "adversarial", "tanda")


def _run(out, method, seed, train_size, epochs, *extra):
    """One ``fastaug train`` run in ``out/<method>-s<seed>`` (skipped when finished, resumed when started)."""
    folder = os.path.join(out, f"{method}-s{seed}")
    if os.path.isfile(os.path.join(folder, "summary.json")):
        return
    # --resume continues an interrupted run, and starts a new one (saying so): no probing for its checkpoint
    cmd = ["nice", "-n", "10", sys.executable, "-m", "fastaug", "train", "--dataset", "mnist5k", "--model", "allconv",
           "--train-size", str(train_size), "--epochs", str(epochs), "--augment", method, "--seed", str(seed),
           "--output-dir", folder, "--no-progress", "--resume", *extra]
    with open(f"{folder}.log", "w") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))


def run_all(out="runs/table4", train_size=500, epochs=15, seeds=(0, 1, 2)):
    """The 15 runs in two lanes: lane 1 adversarial, the last seed of random, standard; lane 2 fixed,
    the other seeds of random, tanda."""
    os.makedirs(out, exist_ok=True)
    last = seeds[-1]
    run = lambda *a: _run(out, a[0], a[1], train_size, epochs, *a[2:])  # noqa: E731
    lanes = [
        [("adversarial", s, "--instances", "8") for s in seeds] + [("random", last, "--instances", "8")]
        + [("standard", s) for s in seeds],
        [("fixed", s, "--instances", "8") for s in seeds] + [("random", s, "--instances", "8") for s in seeds
                                                              if s != last] + [("tanda", s) for s in seeds],
    ]
    threads = [threading.Thread(target=lambda jobs=jobs: [run(*job) for job in jobs]) for jobs in lanes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def summarise(root):
    runs = {}
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name, "summary.json")
        if os.path.isfile(path):
            s = json.load(open(path))
            s["args"] = json.load(open(os.path.join(root, name, "args.json")))
            # TANDA's generator stage is counted once in summary.json's pretrain_seconds (0 for the others)
            s["search_seconds"] = s.get("pretrain_seconds", 0.0)
            runs.setdefault(s["augment"], []).append(s)
    lines = ["| method | M | seeds | epochs | test error % (final), mean ± std | best-epoch error % | s / epoch | "
             "TANDA stage 1 s |", "|---|---|---|---|---|---|---|---|"]
    for m in ORDER:
        if m not in runs:
            continue
        rs = runs[m]
        err = [100 * (1 - r["final_test_acc"]) for r in rs]
        best = [100 * (1 - r["best_test_acc"]) for r in rs]
        sd = statistics.stdev(err) if len(err) > 1 else 0.0
        sdb = statistics.stdev(best) if len(best) > 1 else 0.0
        per_epoch = statistics.mean(r.get("train_seconds", r["total_seconds"]) / r["epochs"] for r in rs)
        args = rs[0]["args"]
        M = args.get("instances", 1) if m in ("fixed", "random", "adversarial") else 1
        search = statistics.mean(r["search_seconds"] for r in rs)
        lines.append(f"| {m} | {M} | {', '.join(str(r['seed']) for r in rs)} | {rs[0]['epochs']} | "
                     f"{statistics.mean(err):.2f} ± {sd:.2f} | {statistics.mean(best):.2f} ± {sdb:.2f} | "
                     f"{per_epoch:.1f} | {f'{search:.0f}' if search else ''} |")
    return "\n".join(lines)



def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fastaug.experiments.table4", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run", help="train the runs (two lanes)")
    r.add_argument("--out", default="runs/table4")
    r.add_argument("--train-size", type=int, default=500)
    r.add_argument("--epochs", type=int, default=15)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    s = sub.add_parser("summary", help="print the Markdown table of the finished runs")
    s.add_argument("root", nargs="?", default="runs/table4")
    a = p.parse_args(argv)
    if a.what == "run":
        run_all(a.out, a.train_size, a.epochs, tuple(a.seeds))
    else:
        print(summarise(a.root))


if __name__ == "__main__":
    main()
