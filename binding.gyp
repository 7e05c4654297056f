# CPU addon, built by node-gyp during `npm install` against the local Node headers.
# The C++ source list is shared with CMakeLists.txt: native/sources.txt (common)
# plus native/sources-cpu.txt (CPU stand-ins for what the CUDA build compiles from .cu).
# OpenBLAS is optional: when `pkg-config --exists openblas` succeeds the model's
# matmuls use cblas_sgemm (DFMERGE_OPENBLAS); otherwise the expansions print
# nothing and the built-in SGEMM (native/model/matmul.cc) is used.
{
  "targets": [
    {
      "target_name": "dfmerge",
      "sources": ["<!@(node native/sources.cjs cpu)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED",
                  "<!@(pkg-config --exists openblas 2>/dev/null && echo DFMERGE_OPENBLAS || true)"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-Wall", "-Wextra", "-Wno-unused-parameter",
                    "<!(node -p \"process.env.DFMERGE_MARCH ? '-march=' + process.env.DFMERGE_MARCH : '-march=native'\")",
                    "<!@(pkg-config --exists openblas 2>/dev/null && pkg-config --cflags openblas || true)"],
      "ldflags": ["-fopenmp"],
      "libraries": ["<!@(pkg-config --exists openblas 2>/dev/null && pkg-config --libs openblas || true)"]
    }
  ]
}
