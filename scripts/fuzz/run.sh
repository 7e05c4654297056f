#!/usr/bin/env bash
# Fuzzes the native safetensors and JSON parsers for a bounded time (default 60 s)
# under AddressSanitizer + UndefinedBehaviorSanitizer. With clang (libFuzzer) it
# runs libFuzzer on the seed corpus; otherwise it builds native/fuzz/driver.cc, a
# seeded mutator, with the system C++ compiler. Skips, saying why, when neither
# compiler can build with sanitizers.
#   scripts/fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_BUDGET="${1:-60}"
OUT="${DFMERGE_FUZZ_DIR:-build/fuzz}"
mkdir -p "$OUT/corpus"
cp test/fixtures/safetensors/*.safetensors test/fixtures/safetensors/sharded/*.safetensors test/fixtures/llama/*/model.safetensors "$OUT/corpus/" 2>/dev/null || true
i=0; for f in test/fixtures/llama/gqa/model.safetensors; do cp "$f" "$OUT/corpus/seed$i.safetensors"; i=$((i+1)); done
SRC=(native/fuzz/safetensors_fuzz.cc native/io/safetensors.cc native/io/json.cc)
FLAGS=(-std=c++17 -O1 -g -Inative -fno-omit-frame-pointer)
if command -v clang++ >/dev/null 2>&1 && clang++ "${FLAGS[@]}" -fsanitize=fuzzer,address,undefined "${SRC[@]}" -o "$OUT/fuzz_libfuzzer" 2>"$OUT/build.log"; then
  echo "== libFuzzer: ${SECONDS_BUDGET}s on the native safetensors/JSON parsers"
  "$OUT/fuzz_libfuzzer" -max_total_time="$SECONDS_BUDGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$OUT/corpus"
elif command -v g++ >/dev/null 2>&1 && g++ "${FLAGS[@]}" -fsanitize=address,undefined -fno-sanitize-recover=all "${SRC[@]}" native/fuzz/driver.cc -o "$OUT/fuzz_driver" 2>"$OUT/build.log"; then
  echo "== clang/libFuzzer not available: seeded mutation driver (g++, ASan+UBSan), ${SECONDS_BUDGET}s"
  "$OUT/fuzz_driver" "$SECONDS_BUDGET" "${DFMERGE_FUZZ_SEED:-1}" "$OUT"/corpus/*.safetensors
else
  echo "== fuzzing skipped: no clang++ with libFuzzer and no g++ with sanitizers ($(tail -1 "$OUT/build.log" 2>/dev/null || echo 'no compiler'))"
fi
