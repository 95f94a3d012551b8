#!/bin/sh
# CMake arguments for a CPU build of llama-cpp-python on this machine.
# Native builds (-march=native) switch on AMX where the CPU advertises it, and some virtual
# machines advertise AMX without granting it: the AMX kernels then die with SIGILL (seen here on
# Q4_K_M). So: no -march=native; every x86 extension the CPU reports is enabled one by one, AMX never.
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
has() { echo " $flags " | grep -q " $1 "; }
args="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
has sse4_2 && args="$args -DGGML_SSE42=ON"
has f16c && args="$args -DGGML_F16C=ON"
has fma && args="$args -DGGML_FMA=ON"
has bmi2 && args="$args -DGGML_BMI2=ON"
has avx && args="$args -DGGML_AVX=ON"
has avx2 && args="$args -DGGML_AVX2=ON"
has avx_vnni && args="$args -DGGML_AVX_VNNI=ON"
has avx512f && has avx512bw && has avx512vl && has avx512dq && has avx512cd && args="$args -DGGML_AVX512=ON"
has avx512vbmi && args="$args -DGGML_AVX512_VBMI=ON"
has avx512_vnni && args="$args -DGGML_AVX512_VNNI=ON"
has avx512_bf16 && args="$args -DGGML_AVX512_BF16=ON"
echo "$args"
