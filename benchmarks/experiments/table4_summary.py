"""Markdown table of the Table 4 ablation runs: final test error, mean +- std over seeds, per method.

    python -m benchmarks.experiments.table4_summary runs/table4
"""
import json
import os
import statistics
import sys

ORDER = ("standard", "fixed", "random", "adversarial", "tanda")


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
                     f"{statistics.mean(err):.2f} ± {sd:.2f} | {statistics.mean(best):.2f} ± {sdb:.2f} | {per_epoch:.1f} | "
                     f"{f'{search:.0f}' if search else ''} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarise(sys.argv[1] if len(sys.argv) > 1 else "runs/table4"))
