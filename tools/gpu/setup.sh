#!/bin/bash
# Sourced by run-matrix.sh, run-multigpu.sh and run-validation.sh on an offline GPU machine, from
# the project root:
#   source tools/gpu/setup.sh WHEELS SRC_TGZ
# WHEELS: a folder of the Python wheels the machine lacks (snakemake, plotly, bitsandbytes, ...);
# SRC_TGZ: the llama-cpp-python source archive of the pinned version (it holds llama.cpp and its
# converter). Installs the wheels into /tmp/site (again only when the folder's wheels change),
# builds llama-cpp-python from the archive with CUDA for the card it finds (once per machine:
# about 4 minutes on 16 cores), and puts /tmp/site and src/ on PYTHONPATH; the machine's own
# packages are left alone. The archive stays unpacked under /tmp/lcp-src (LCP_SRC names its tree:
# tools/build-llama-tools.sh builds llama.cpp's own tools from it).
WHEELS="$1"; SRC_TGZ="$2"
export PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p /tmp/site
wheels_id="$(ls "$WHEELS" | md5sum)"
if [ "$(cat /tmp/site/.wheels-done 2>/dev/null)" != "$wheels_id" ]; then
  python3 -m pip install -q --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl && echo "$wheels_id" > /tmp/site/.wheels-done
fi
export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PATH="/tmp/site/bin:$PATH"
if [ ! -d /tmp/lcp-src ] || ! ls -d /tmp/lcp-src/llama_cpp_python-* >/dev/null 2>&1; then
  rm -rf /tmp/lcp-src && mkdir -p /tmp/lcp-src && tar xzf "$SRC_TGZ" -C /tmp/lcp-src
fi
LCP_SRC="$(ls -d /tmp/lcp-src/llama_cpp_python-* | head -1)"
export LCP_SRC
# gguf-py, which reads GGUF headers and tensor tables (quantbench.artifacts.gguf), comes with the source
case ":$PYTHONPATH:" in *":$LCP_SRC/vendor/llama.cpp/gguf-py:"*) ;;
  *) export PYTHONPATH="$PYTHONPATH:$LCP_SRC/vendor/llama.cpp/gguf-py" ;; esac
if ! python3 -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)" 2>/dev/null; then
  arch="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)"
  start=$SECONDS
  CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${arch:-90} -DLLAVA_BUILD=off" \
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    python3 -m pip install -q --no-deps --no-build-isolation --no-cache-dir --target /tmp/site \
    "$LCP_SRC" >/tmp/lcp-build.log 2>&1 \
    || { echo "llama-cpp-python CUDA build failed; see /tmp/lcp-build.log"; tail -20 /tmp/lcp-build.log; }
  echo "llama-cpp-python CUDA build: $((SECONDS - start)) s"
fi
python3 - <<'PY'
import bitsandbytes, llama_cpp, snakemake, torch
print(f"gpu: {torch.cuda.get_device_name(0)} | torch {torch.__version__} | bnb "
      f"{bitsandbytes.__version__} | llama_cpp {llama_cpp.__version__} "
      f"offload={llama_cpp.llama_supports_gpu_offload()} | snakemake {snakemake.__version__}")
PY
