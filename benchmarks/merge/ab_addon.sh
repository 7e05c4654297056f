#!/usr/bin/env bash
# A/B of two builds of the native addon on one method, alternating runs so that
# the noise of a shared machine falls on both (the way the §11 levers were
# measured): copies each .node in turn over build/Release/dfmerge.node, runs
# run_one.js on the benchmark checkpoints, prints each time and the means, and
# puts the NEW build back (NEW may be build/Release/dfmerge.node itself).
#
#   bash benchmarks/merge/ab_addon.sh OLD.node NEW.node METHOD [ROUNDS] [DATA_DIR]
#
# DATA_DIR defaults to the checkpoints bench.js made (benchmarks/.data/bf16-L7-H1024-V8192-M2).
# COLD=1: the page cache dropped before every run (`sync; echo 3 > drop_caches`; needs root).
set -euo pipefail
old=$1 new=$2 method=$3 rounds=${4:-5}
root=$(cd "$(dirname "$0")/../.." && pwd)
data=${5:-$root/benchmarks/.data/bf16-L7-H1024-V8192-M2}
addon=$root/build/Release/dfmerge.node
for f in "$old" "$new" "$data/base" "$data/model0" "$data/model1" "$root/dist/benchmarks/merge/run_one.js"; do
  [ -e "$f" ] || { echo "ab_addon: $f does not exist" >&2; exit 1; }
done
out=$(mktemp -d)
# private copies first: NEW (or OLD) may be the addon path itself
cp "$old" "$out/old.node"
cp "$new" "$out/new.node"
old=$out/old.node new=$out/new.node
trap 'cp "$new" "$addon"; rm -rf "$out"' EXIT
for i in $(seq 1 "$rounds"); do
  for v in old new; do
    if [ $v = old ]; then cp "$old" "$addon"; else cp "$new" "$addon"; fi
    if [ "${COLD:-0}" = 1 ]; then
      sync
      echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || { echo "ab_addon: COLD=1 needs root to drop the page cache" >&2; exit 1; }
    fi
    if ! r=$(node "$root/dist/benchmarks/merge/run_one.js" "$method" "$data/base" "$out/$v" "$data/model0" "$data/model1"); then
      echo "ab_addon: the $v build failed on $method" >&2
      exit 1
    fi
    s=$(sed -E 's/.*"seconds":([0-9.]+).*/\1/' <<<"$r")
    echo "$v $s"
    echo "$v $s" >>"$out/times"
  done
done
awk '{ sum[$1] += $2; n[$1]++ } END { printf "mean: old %.3f s, new %.3f s\n", sum["old"] / n["old"], sum["new"] / n["new"] }' "$out/times"
