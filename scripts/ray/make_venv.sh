#!/usr/bin/env bash
# Makes .venv-ray/ (git-ignored): Python with Ray and the packages its dashboard
# (the Jobs REST API) imports, from the local package stores only, for
# test/dfmerge/ray_cluster.test.ts. Never touches .venv. Then prints what the
# dashboard still lacks, as Ray itself checks it (ray.dashboard.optional_deps):
# exit 0 when a head with the Jobs API can start, 3 when a module is missing
# (the last line names them), 1 when the venv cannot be made.
#
#   scripts/ray/make_venv.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${1:-.venv-ray}"
PY="${PYTHON:-python3}"
PIP_STORES=(--find-links /opt/wheels --index-url file:///opt/pypi/simple --extra-index-url file:///opt/pypi-more/simple)

if [ ! -x "$VENV/bin/ray" ]; then
  "$PY" -m venv "$VENV" || { echo "cannot create a venv with $PY"; exit 1; }
  "$VENV/bin/pip" install -qq "${PIP_STORES[@]}" "ray==2.58.0" || { echo "pip could not install ray 2.58.0 from the package stores"; exit 1; }
  # ray[default]'s dashboard extras, each on its own: a store may lack some
  for pkg in aiohttp aiohttp_cors grpcio prometheus_client pydantic smart_open virtualenv opencensus colorful \
             opentelemetry-sdk opentelemetry-exporter-prometheus opentelemetry-proto py-spy requests; do
    "$VENV/bin/pip" install -qq "${PIP_STORES[@]}" "$pkg" >/dev/null 2>&1 || echo "not in the package stores: $pkg"
  done
fi

# the modules ray/dashboard/optional_deps.py imports, each tried
"$VENV/bin/python" - <<'PY'
import importlib, sys
mods = ["aiohttp", "aiohttp.web", "aiohttp_cors", "grpc", "opencensus", "opentelemetry",
        "opentelemetry.exporter.prometheus", "opentelemetry.proto", "prometheus_client", "pydantic"]
missing = []
for m in mods:
    try:
        importlib.import_module(m)
    except ImportError:
        missing.append(m)
try:
    import ray.dashboard.optional_deps  # Ray's own check, the one `ray start --include-dashboard` makes
except ImportError as e:
    if not missing:
        missing.append(str(e))
if missing:
    print("the Ray dashboard (Jobs REST API) cannot start: missing Python modules " + ", ".join(missing))
    sys.exit(3)
import ray
print(f"ray {ray.__version__} with its dashboard")
PY
