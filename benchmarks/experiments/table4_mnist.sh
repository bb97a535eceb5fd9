#!/usr/bin/env bash
# The AdvAA paper's Table 4 ablation on MNIST-5k with allconv, same epochs for every method:
# standard (M=1), fixed, random, adversarial (M=8), tanda; seeds 0 1 2. Two lanes run side by side
# (the VM has two cores); each process uses one thread. Outputs: runs/table4/<method>-s<seed>/.
#   bash benchmarks/experiments/table4_mnist.sh        # then:
#   python -m benchmarks.experiments.table4_summary runs/table4
set -euo pipefail
OUT=${OUT:-runs/table4}
TRAIN_SIZE=${TRAIN_SIZE:-500}
EPOCHS=${EPOCHS:-15}
SEEDS=${SEEDS:-"0 1 2"}
PY=${PY:-python}
export OMP_NUM_THREADS=1
run() {  # method seed [extra args]
  local m=$1 s=$2; shift 2
  local dir="$OUT/$m-s$s"
  [ -f "$dir/summary.json" ] && return 0
  local resume=""; [ -f "$dir/checkpoint.pt" ] && resume="--resume"
  nice -n 10 $PY -m fastaug train --dataset mnist5k --model allconv --train-size "$TRAIN_SIZE" --epochs "$EPOCHS" \
    --augment "$m" --seed "$s" --output-dir "$dir" --no-progress $resume "$@" > "$dir.log" 2>&1
}
mkdir -p "$OUT"
LAST_SEED=$(echo $SEEDS | awk '{print $NF}')  # lane 1 runs this seed of `random`, lane 2 the others
lane1() { for s in $SEEDS; do run adversarial "$s" --instances 8; done; run random "$LAST_SEED" --instances 8
          for s in $SEEDS; do run standard "$s"; done; }
lane2() { for s in $SEEDS; do run fixed "$s" --instances 8; done
          for s in $SEEDS; do [ "$s" = "$LAST_SEED" ] || run random "$s" --instances 8; done
          for s in $SEEDS; do run tanda "$s"; done; }
lane1 & lane2 & wait
