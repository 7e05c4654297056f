# CPU addon, built by node-gyp during `npm install` against the local Node headers.
# The C++ source list is shared with CMakeLists.txt: native/sources.txt (common)
# plus native/sources-cpu.txt (CPU stand-ins for what the CUDA build compiles from .cu).
# The model's matmuls use the built-in SGEMM (native/model/matmul.cc), which forms
# bf16 and scaled-model weights while packing panels (no BLAS takes those).
{
  "targets": [
    {
      "target_name": "dfmerge",
      "sources": ["<!@(node native/sources.cjs cpu)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-Wall", "-Wextra", "-Wno-unused-parameter",
                    "<!(node -p \"process.env.DFMERGE_MARCH ? '-march=' + process.env.DFMERGE_MARCH : '-march=native'\")"],
      "ldflags": ["-fopenmp"]
    }
  ]
}
