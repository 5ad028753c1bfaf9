#!/bin/sh
# Removes what a Lambda runtime never loads from a venv's site-packages: test suites,
# C/C++ headers, static libraries, Cython sources, CMake files, torch's C++ test
# binaries and test libraries, pyarrow's Flight, Substrait binding, ORC and remote filesystem
# modules (we read and write through boto3), botocore's models of AWS services
# the handlers never call (26 MB), and OpenVINO's GPU/NPU plugins, GPU kernel cache,
# AUTO/HETERO/BATCH meta-plugins, C API and the frontends of formats we never read
# (ONNX, TensorFlow, TF Lite, Paddle, JAX, GGUF): 86 MB of its 180. Workers read IR (the
# IR frontend) on the CPU plugin; the PyTorch frontend stays for the image build's
# conversion. Every removal is checked by the image tests, which
# import the packages, write and read a catalog and run a handler inside the image.
#   prune.sh <venv>
set -eu
sp="$(echo "$1"/lib/python3.*/site-packages)"
[ -d "$sp" ] || { echo "prune.sh: no site-packages under $1" >&2; exit 1; }

find "$sp" -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} +
find "$sp" -depth -type d -name include -path '*/site-packages/*/include' -exec rm -rf {} +
find "$sp" -type f \( -name '*.a' -o -name '*.h' -o -name '*.hpp' -o -name '*.cuh' \
  -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.cc' -o -name '*.cpp' \) -delete

if [ -d "$sp/torch" ]; then
  rm -rf "$sp/torch/test" "$sp/torch/share/cmake" "$sp/torch/include"
  # Only torch_shm_manager is used at run time (shared-memory tensors).
  find "$sp/torch/bin" -mindepth 1 -maxdepth 1 ! -name torch_shm_manager -exec rm -rf {} +
  rm -f "$sp"/torch/lib/libjitbackend_test.so "$sp"/torch/lib/libtorchbind_test.so \
        "$sp"/torch/lib/libbackend_with_compiler.so "$sp"/torch/lib/libaoti_custom_ops.so
fi
if [ -d "$sp/pyarrow" ]; then
  rm -f "$sp"/pyarrow/libarrow_flight.so* "$sp"/pyarrow/libarrow_python_flight.so* \
        "$sp"/pyarrow/_flight.cpython-*.so "$sp"/pyarrow/flight.py \
        "$sp"/pyarrow/libarrow_s3.so* "$sp"/pyarrow/_s3fs.cpython-*.so \
        "$sp"/pyarrow/_substrait.cpython-*.so "$sp"/pyarrow/substrait.py \
        "$sp"/pyarrow/_orc.cpython-*.so "$sp"/pyarrow/_dataset_orc.cpython-*.so \
        "$sp"/pyarrow/_hdfs.cpython-*.so "$sp"/pyarrow/_gcsfs.cpython-*.so "$sp"/pyarrow/_azurefs.cpython-*.so \
        "$sp"/pyarrow/_pyarrow_cpp_tests.cpython-*.so
  rm -rf "$sp/pyarrow/src"
  # The wheel carries libarrow_python three times (wheels hold no symlinks): link them.
  real="$(cd "$sp/pyarrow" && ls libarrow_python.so.*.*.* 2>/dev/null | head -n 1)"
  if [ -n "$real" ]; then
    for f in "$sp"/pyarrow/libarrow_python.so "$sp"/pyarrow/libarrow_python.so.[0-9]*; do
      case "$(basename "$f")" in "$real") ;; *) ln -sf "$real" "$f" ;; esac
    done
  fi
fi
if [ -d "$sp/openvino" ]; then
  ov="$sp/openvino"
  rm -f "$ov"/libs/libopenvino_intel_gpu_plugin.so "$ov"/libs/libopenvino_intel_npu_plugin.so "$ov"/libs/cache.json \
        "$ov"/libs/libopenvino_auto_plugin.so "$ov"/libs/libopenvino_auto_batch_plugin.so \
        "$ov"/libs/libopenvino_hetero_plugin.so "$ov"/libs/libopenvino_c.so* "$ov"/libs/tbb.pc
  for fe in onnx tensorflow tensorflow_lite paddle jax gguf; do
    rm -f "$ov"/libs/libopenvino_"$fe"_frontend.so*
  done
  rm -rf "$ov"/frontend/onnx "$ov"/frontend/tensorflow "$ov"/frontend/paddle "$ov"/frontend/jax
fi
if [ -d "$sp/botocore/data" ]; then
  # Handlers call S3 only; STS and SSO serve the credential chain; the rest is for
  # tools that may run inside the image (logs, lambda, stepfunctions).
  keep=" s3 sts sso sso-oidc logs lambda stepfunctions "
  for d in "$sp"/botocore/data/*/; do
    name="$(basename "$d")"
    case "$keep" in *" $name "*) ;; *) rm -rf "$d" ;; esac
  done
fi
