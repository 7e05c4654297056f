#!/usr/bin/env bash
# Installs mergekit into .venv from a source checkout, offline, for the merge
# benchmark's same-run comparison (benchmarks/README.md):
#   bash benchmarks/merge/install_mergekit.sh /path/to/mergekit-source
# mergekit's pins (pydantic ~2.10, immutables) are not in the local package
# stores: it is installed with --no-deps, with the stores' pydantic and the
# stand-in `immutables` of benchmarks/merge/standin. None of mergekit's code is
# kept in this repository.
set -euo pipefail
src=${1:?usage: install_mergekit.sh MERGEKIT_SOURCE_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
py="$root/.venv/bin/python"
[ -x "$py" ] || { echo "no $py: create .venv first (README, Fixtures)" >&2; exit 1; }
pip=("$py" -m pip install --index-url file:///opt/pypi/simple --extra-index-url file:///opt/pypi-more/simple --find-links /opt/wheels)
"${pip[@]}" pydantic scipy sentencepiece protobuf tqdm click accelerate
"${pip[@]}" --no-deps "$src"
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf "$site/immutables"
cp -r "$root/benchmarks/merge/standin/immutables" "$site/immutables"
"$py" -c 'import mergekit.graph; print("mergekit importable")'
