# mk/arm64.mk — AArch64 from this x86-64 Debian machine: cross-building with Debian's
# aarch64-linux-gnu-gcc and the arm64 -dev packages (multiarch), and the tests under
# qemu-aarch64 (docs/edge.md).
#   make cross-arm64    the programs, libraries, examples and Criterion binaries in build-arm64/
#   make test-arm64     the suite under qemu on two emulated CPUs (tests/run_arm64.sh)
# Needs `tools/install-deps.sh --arm64` once (root). Criterion's arm64 packages cannot be
# installed beside the amd64 ones (libnanomsg is not multi-arch), so they are unpacked into
# build-arm64/criterion/ instead (tools/arm64_criterion.sh; apt-get download, no root).
# Knobs: ARM64_CC, ARM64_BUILD, ARM64_CPU_FULL (runs everything; must have dot products),
# ARM64_CPU_BASE (no dot products: the kernel, parity and runtime tests).

ARM64_CC       ?= aarch64-linux-gnu-gcc
ARM64_BUILD    ?= build-arm64
ARM64_CPU_FULL ?= cortex-a76
ARM64_CPU_BASE ?= cortex-a72
ARM64_CRITERION = $(abspath $(ARM64_BUILD))/criterion
# Everything the arm64 tree is built with; tests/run_arm64.sh hands it to the install test.
ARM64_ARGS      = BUILD=$(ARM64_BUILD) CC=$(ARM64_CC) CUDA=0 SANITIZE= CRITERION_ROOT=$(ARM64_CRITERION)

.PHONY: cross-arm64 test-arm64
cross-arm64: $(ARM64_BUILD)/criterion/.done
	@command -v $(ARM64_CC) > /dev/null || \
	  { echo "no $(ARM64_CC): run tools/install-deps.sh --arm64"; exit 1; }
	$(MAKE) --no-print-directory $(ARM64_ARGS) all examples tests

$(ARM64_BUILD)/criterion/.done: tools/arm64_criterion.sh
	tools/arm64_criterion.sh $(ARM64_CRITERION)
	touch $@

test-arm64: cross-arm64
	QRR_BUILD=$(abspath $(ARM64_BUILD)) QRR_MAKE_ARGS='$(ARM64_ARGS)' ARM64_CC=$(ARM64_CC) \
	  tests/run_arm64.sh $(ARM64_CPU_FULL) $(ARM64_CPU_BASE)
