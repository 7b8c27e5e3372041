#!/usr/bin/env bash
# run_arm64.sh CPU_FULL CPU_BASE — the arm64 build's Criterion suite under qemu-aarch64 (user
# mode), on two emulated CPUs: CPU_FULL (which must have the dot-product instructions) runs
# the test binaries whose code can behave differently on arm64 (kernels, numerics, parsing
# with arm64's unsigned char, the file format, the C API), CPU_BASE (which must not) the
# kernel tests and the parity with Transformers (f32, f16, int8), what the CPU model
# changes: so both int8 paths (sdot and plain NEON) run end to end. The binaries that drive
# the programs and the server through the shell (cli, convert, server, install, limits...)
# run natively and under the sanitizers only: they test the same C code, and qemu-user on
# an x86-64 host does not reproduce arm64's weaker memory ordering, so its threads find no
# race x86-64 would not; under emulation they took most of CI's time. Before each run, `qrr --version` under that CPU must name the NEON kernels it expects.
# Run by `make test-arm64` (QRR_BUILD, QRR_MAKE_ARGS, ARM64_CC set); the Python package's
# tests are not run here (they load the library into the host's python).
#
# The test binaries start other arm64 programs (qrr, qconvert, their own workers) through the
# shell, so the kernel must run arm64 binaries itself: binfmt_misc with qemu-aarch64 as the
# interpreter, registered here when it is not (needs root). QEMU_CPU, inherited by every
# process, picks the emulated CPU. Tools the tests call on the build's binaries (cc, nm) are
# the cross ones, through a directory put first on PATH. QRR_TEST_EMULATED tells the tests
# they run emulated (a few scale their workload down: docs/edge.md), and QRR_TEST_MODEL_CACHE
# lets them convert each reference model once per CPU model. Each CPU's output is kept in
# $QRR_BUILD/test-arm64-<cpu>.log.
set -uo pipefail
full=${1:?usage: run_arm64.sh CPU_FULL CPU_BASE}
base=${2:?usage: run_arm64.sh CPU_FULL CPU_BASE}
build=${QRR_BUILD:?QRR_BUILD must name the arm64 build directory}
cross=${ARM64_CC:-aarch64-linux-gnu-gcc}
prefix=${cross%gcc}
full_tests=(test_kernels test_parity test_runtime test_api test_tokenizer test_format
            test_safetensors test_hf_config test_regress test_pool)
base_tests=(test_kernels test_parity)

binfmt=/proc/sys/fs/binfmt_misc
qemu=$(command -v qemu-aarch64) || { echo "run_arm64: no qemu-aarch64 (tools/install-deps.sh --arm64)"; exit 1; }
if [ ! -e "$binfmt/qemu-aarch64" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "run_arm64: arm64 binaries do not run here (no binfmt_misc entry for qemu-aarch64);" \
         "run this as root once to register it, or install qemu-user-binfmt"
    exit 1
  fi
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt" || exit 1
  # ELF, 64-bit, little-endian, executable or shared object, machine 183 (AArch64); F: the
  # interpreter is opened now, so it also works in other mount namespaces.
  magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
  mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
  printf '%s' ":qemu-aarch64:M::$magic:$mask:$qemu:F" > "$binfmt/register" || exit 1
  echo "run_arm64: registered $qemu for arm64 binaries (binfmt_misc)"
fi

tools="$build/host-tools"
mkdir -p "$tools"
ln -sf "$(command -v "$cross")" "$tools/cc"
ln -sf "$(command -v "${prefix}nm")" "$tools/nm"
export PATH="$tools:$PATH"

# One CPU model: its kernels as `qrr --version` names them, then the tests.
passed=0; failed=0
run_cpu() {
  local cpu=$1 want=$2; shift 2
  echo "== qemu-aarch64 -cpu $cpu: $build/qrr --version"
  local v
  v=$(QEMU_CPU=$cpu "$build/qrr" --version 2>&1)
  printf '%s\n' "$v"
  if ! grep -q "int8 GEMM $want," <<<"$v"; then
    echo "run_arm64: under -cpu $cpu the int8 kernels should be '$want'"
    failed=$((failed + 1))
    return
  fi
  local t0=$SECONDS log="$build/test-arm64-$cpu.log" cache="$build/test-models-$cpu"
  rm -rf "$cache"
  QEMU_CPU=$cpu QRR_TEST_EMULATED="qemu-aarch64 -cpu $cpu" QRR_TEST_MODEL_CACHE="$cache" \
    tests/run.sh "$@" 2>&1 | tee "$log"
  local line
  line=$(tail -n 1 "$log")
  local p f
  p=$(sed -n 's/^tests: \([0-9]*\) passed.*/\1/p' <<<"$line"); p=${p:-0}
  f=$(sed -n 's/.* \([0-9]*\) failed$/\1/p' <<<"$line"); f=${f:-1}
  echo "== -cpu $cpu: $p passed, $f failed in $((SECONDS - t0)) s"
  passed=$((passed + p)); failed=$((failed + f))
}

run_cpu "$full" neon-dotprod "${full_tests[@]/#/$build/tests/}"
run_cpu "$base" neon "${base_tests[@]/#/$build/tests/}"
echo "arm64: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
