# CPU addon, built by node-gyp during `npm install` against the local Node headers.
# The C++ source list is shared with CMakeLists.txt: native/sources.txt (common)
# plus native/sources-cpu.txt (CPU stand-ins for what the CUDA build compiles from .cu),
# and native/sources-ieee.txt: the merge kernels, built as a static library with
# -ffp-contract=off. g++ contracts a*b + c into an FMA by default in C++ (even with
# -std=c++17), where the machine has FMA: the merge's bytes would then depend on the
# CPU the addon was built for, and differ from the CUDA twin (built --fmad=false).
# The model runtime keeps contraction: its SGEMM (native/model/matmul.cc) is
# compute-bound, and forms bf16 and scaled-model weights while packing panels (no
# BLAS takes those).
{
  "target_defaults": {
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-fPIC", "-Wall", "-Wextra", "-Wno-unused-parameter",
                  "<!(node -p \"process.env.DFMERGE_MARCH ? '-march=' + process.env.DFMERGE_MARCH : '-march=native'\")"]
  },
  "targets": [
    {
      "target_name": "dfmerge_ieee_kernels",
      "type": "static_library",
      "sources": ["<!@(node native/sources.cjs ieee)"],
      "cflags_cc+": ["-ffp-contract=off"]
    },
    {
      "target_name": "dfmerge",
      "dependencies": ["dfmerge_ieee_kernels"],
      "sources": ["<!@(node native/sources.cjs cpu)"],
      "ldflags": ["-fopenmp"]
    }
  ]
}
