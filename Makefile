# qrr — one Makefile. `make` builds the programs and libraries into build/, `make test`
# runs the Criterion suite and the Python package's tests, `make check-tokenizer` holds the
# tokenizer to Hugging Face's on generated text, `make bench` the CPU benchmark,
# `make fuzz` the fuzz targets, `make install PREFIX=... [DESTDIR=...]` installs the header,
# the libraries, qrr.pc and the two programs (`make uninstall` removes them), `make
# cross-arm64` / `make test-arm64` the ARM64 build and its tests under qemu (mk/arm64.mk).
# Knobs: CC, CUDA (auto|0|1), SANITIZE (e.g. address,undefined or thread), OPT, PREFIX,
# SERVER (1|0: `qrr serve`, which needs libmicrohttpd), PYTEST (1|0: `make test` runs the
# Python package's tests too), TEST_SKIP (test binaries `make test` leaves out).

CC       ?= cc
OPT      ?= -O2
CUDA     ?= auto
SANITIZE ?=
NVCC     ?= nvcc
BUILD    ?= build
PYTEST   ?= 1
SERVER   ?= 1

PREFIX   ?= /usr/local

WARN     := -Wall -Wextra -Wstrict-prototypes -Werror=implicit-function-declaration
# Hidden visibility: libqrr.so exports what include/ marks QRR_API and nothing else.
# No a * b + c contracted into one fused step: every kernel rounds as the scalar reference
# does (GCC's default in C11 mode; clang's default contracts).
CFLAGS   += -std=c11 -g $(OPT) -fPIC -fvisibility=hidden -ffp-contract=off -D_GNU_SOURCE $(WARN)

# What each part may include, by the directory of the source: include/ (the public API)
# under everything; the runtime never sees convert/; the qrr tool and the examples see the
# public API only, and so does the server (a client of the library like any other). Tests,
# benchmarks and fuzz targets see everything (INCLUDES).
INC_format   := -Iinclude -Iformat
INC_kernels  := $(INC_format) -Ikernels/cpu -Ikernels/cuda
INC_runtime  := $(INC_kernels) -Iruntime
INC_convert  := $(INC_format) -Iruntime -Iconvert
INC_tools    := -Iinclude -Itools/qrr -Iserver
INC_server   := -Iinclude -Iserver
INC_examples := -Iinclude
INCLUDES     := $(INC_runtime) -Iconvert
inc_for = $(or $(INC_$(firstword $(subst /, ,$(1)))),$(INCLUDES))

# The version is the header's; the soname carries its major number.
VERSION  := $(shell sed -n 's/.*QRR_VERSION_STRING "\([^"]*\)".*/\1/p' include/qrr.h)
SONAME   := libqrr.so.$(firstword $(subst ., ,$(VERSION)))
LDLIBS_RT := -lxxhash -lz -lutf8proc -lpcre2-8 -ldl -lpthread -lm
LDLIBS_CV := -ljansson
LDLIBS_SRV := -lmicrohttpd

ifneq ($(SANITIZE),)
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SANITIZE)
endif

# The CUDA module, libqrr_cuda.so.0 (runtime/cuda_model.c and kernels/cuda, linked with the
# CUDA runtime and cuBLASLt), is built when nvcc is found (CUDA=auto) or asked for (CUDA=1).
# libqrr never links CUDA: it loads the module when a context asks for device cuda.
ifeq ($(CUDA),auto)
CUDA := $(if $(shell command -v $(NVCC) 2>/dev/null),1,0)
endif
CU_SRC := $(wildcard kernels/cuda/*.cu)
CUDA_MOD_NAME := libqrr_cuda.so.0
ifeq ($(CUDA),1)
ifneq ($(CU_SRC),)
CUDA_HOME ?= $(patsubst %/bin/,%,$(dir $(shell command -v $(NVCC))))
CFLAGS    += -I$(CUDA_HOME)/include
NVFLAGS   ?= -O3 -std=c++17 -lineinfo -Xcompiler -fPIC -Xcompiler -fvisibility=hidden \
             -gencode arch=compute_90,code=sm_90 $(INC_kernels)
# The module finds the CUDA runtime and cuBLASLt through its run path; nothing else has one.
LDLIBS_CUDA := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcudart -lstdc++
CUDA_MOD    := $(BUILD)/$(CUDA_MOD_NAME)
endif
endif

# The CPU kernels' vector versions for the target's architecture only (the compiler's
# target, so a cross compiler picks its own): *_avx2.c and *_avx512.c on x86-64, *_neon.c on
# AArch64, neither elsewhere (the scalar versions serve).
ARCH        ?= $(firstword $(subst -, ,$(shell $(CC) -dumpmachine)))
CPU_SRC     := $(wildcard kernels/cpu/*.c)
CPU_X86     := $(filter %_avx2.c %_avx512.c,$(CPU_SRC))
CPU_NEON    := $(filter %_neon.c,$(CPU_SRC))
CPU_SRC     := $(filter-out $(if $(filter x86_64,$(ARCH)),,$(CPU_X86)) \
                 $(if $(filter aarch64,$(ARCH)),,$(CPU_NEON)),$(CPU_SRC))
LIB_SRC     := $(wildcard format/*.c) $(filter-out runtime/cuda_model.c,$(wildcard runtime/*.c)) $(CPU_SRC)
CONVERT_SRC := $(filter-out convert/main.c,$(wildcard convert/*.c))
QRR_SRC     := $(wildcard tools/qrr/*.c) $(wildcard server/*.c)
ifeq ($(SERVER),0)
QRR_SRC     := $(filter-out server/% tools/qrr/cmd_serve.c,$(QRR_SRC))
CFLAGS      += -DQRR_NO_SERVER
LDLIBS_SRV  :=
endif
TEST_SRC    := $(wildcard tests/test_*.c)
EXAMPLE_SRC := $(wildcard examples/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJ     := $(call obj,$(LIB_SRC))
CU_OBJ      := $(patsubst %.cu,$(BUILD)/obj/%.o,$(CU_SRC))
# The module: the CUDA forward pass, its kernels, and its own copy of the two small helpers
# it shares with libqrr (qrr_fail, qrr_time_seconds), so that it needs nothing from libqrr.
CUDA_MOD_OBJ := $(call obj,runtime/cuda_model.c format/qrr_diag.c format/qrr_impl.c) $(CU_OBJ)
CONVERT_OBJ := $(call obj,$(CONVERT_SRC))
QRR_OBJ     := $(call obj,$(QRR_SRC))
# TEST_SKIP: test binaries (test_install ...) that `make test` leaves out
TESTS       := $(filter-out $(addprefix $(BUILD)/tests/,$(TEST_SKIP)),$(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC)))
EXAMPLES    := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))

# The build's configuration, kept in $(BUILD)/config and rewritten only when it changes:
# every object depends on it, so `make CUDA=0` (or another knob) over a tree built
# otherwise rebuilds it rather than keep, or link, what the other configuration made.
BUILD_CONFIG := $(CC) $(CFLAGS) | $(LDFLAGS) | $(LDLIBS_RT) | CUDA=$(CUDA) $(NVCC) $(NVFLAGS) $(LDLIBS_CUDA)
CONFIG_STAMP := $(BUILD)/config
# A configuration without CUDA also removes the CUDA module an earlier one left there, which
# the new libqrr would find beside it and take for its own.
$(shell mkdir -p $(BUILD) && [ "$$(cat $(CONFIG_STAMP) 2>/dev/null)" = '$(subst ','\'',$(BUILD_CONFIG))' ] || \
  { printf '%s\n' '$(subst ','\'',$(BUILD_CONFIG))' > $(CONFIG_STAMP); \
    $(if $(CUDA_MOD),:,rm -f $(BUILD)/$(CUDA_MOD_NAME)); })

.PHONY: all test tests check-tokenizer bench bench-serve bench-ray bench-tokenizer fuzz examples clean install uninstall
.SECONDARY:
all: $(BUILD)/libqrr.a $(BUILD)/libqrr.so $(BUILD)/$(SONAME) $(BUILD)/qconvert $(BUILD)/qrr $(BUILD)/qgen \
     $(BUILD)/qrr-uninstalled.pc $(BUILD)/qrr.pc.in $(CUDA_MOD)

$(BUILD)/obj/%.o: %.c $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(call inc_for,$<) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.cu $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(BUILD)/libqrr.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# libqrr.so.X.Y.Z with soname libqrr.so.X, and the two links to it.
$(BUILD)/libqrr.so.$(VERSION): $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,$(SONAME) -o $@ $^ $(LDLIBS_RT)

$(BUILD)/$(SONAME) $(BUILD)/libqrr.so: $(BUILD)/libqrr.so.$(VERSION)
	ln -sf $(notdir $<) $@

# The CUDA module exports one symbol (runtime/cuda_module.map); libqrr finds it beside itself.
# -z defs: a symbol none of its objects or libraries define fails here, not at dlopen.
ifneq ($(CUDA_MOD),)
$(BUILD)/$(CUDA_MOD_NAME): $(CUDA_MOD_OBJ) runtime/cuda_module.map
	$(CC) -shared $(LDFLAGS) -Wl,-soname,$(CUDA_MOD_NAME) -Wl,--version-script=runtime/cuda_module.map \
	  -Wl,-z,defs -o $@ $(CUDA_MOD_OBJ) $(LDLIBS_CUDA)
else
$(BUILD)/$(CUDA_MOD_NAME):
	@echo "the CUDA module needs nvcc (CUDA=1 with the CUDA toolkit; this build has CUDA=$(CUDA))"; false
endif

# pkg-config's description of the build tree, with the link line of this build:
# PKG_CONFIG_PATH=build pkg-config --cflags --libs qrr
$(BUILD)/qrr-uninstalled.pc: Makefile $(wildcard mk/*.mk) include/qrr.h $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	printf '%s\n' 'Name: qrr' 'Description: Qwen3-Reranker scoring (build tree, static)' \
	  'Version: $(VERSION)' 'Cflags: -I$(abspath include)' \
	  'Libs: $(abspath $(BUILD))/libqrr.a $(filter -Wl% -fsanitize%,$(LDFLAGS)) $(LDLIBS_RT)' > $@

# The installed description; `make install` writes its prefix in. The static libraries are
# for `pkg-config --static`.
$(BUILD)/qrr.pc.in: Makefile $(wildcard mk/*.mk) include/qrr.h $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	printf '%s\n' 'prefix=@PREFIX@' 'includedir=$${prefix}/include' 'libdir=$${prefix}/lib' '' \
	  'Name: qrr' 'Description: Qwen3-Reranker scoring from C' 'Version: $(VERSION)' \
	  'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lqrr' \
	  'Libs.private: $(filter -Wl% -fsanitize%,$(LDFLAGS)) $(LDLIBS_RT)' > $@

# Installs what a C user needs (header, libraries, qrr.pc), the two programs, and in a CUDA
# build the CUDA module beside libqrr (where libqrr and bin/qrr look for it).
INSTALLED := include/qrr.h include/qrr_status.h lib/libqrr.so.$(VERSION) lib/$(SONAME) \
             lib/libqrr.so lib/libqrr.a lib/pkgconfig/qrr.pc bin/qrr bin/qconvert \
             lib/$(CUDA_MOD_NAME)
install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/qrr.h include/qrr_status.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(BUILD)/libqrr.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libqrr.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libqrr.so
	install -m 644 $(BUILD)/libqrr.a $(DESTDIR)$(PREFIX)/lib/
	$(if $(CUDA_MOD),install -m 755 $(CUDA_MOD) $(DESTDIR)$(PREFIX)/lib/)
	sed 's|@PREFIX@|$(PREFIX)|' $(BUILD)/qrr.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/qrr.pc
	install -m 755 $(BUILD)/qrr $(BUILD)/qconvert $(DESTDIR)$(PREFIX)/bin/
	@# The loader finds a new library in /usr/local/lib only once its cache is refreshed.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then PATH="$$PATH:/sbin:/usr/sbin"; \
	  if command -v ldconfig >/dev/null; then echo ldconfig; ldconfig; fi; fi

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/,$(INSTALLED))

$(BUILD)/qconvert: $(call obj,convert/main.c) $(CONVERT_OBJ) $(BUILD)/libqrr.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_CV) $(LDLIBS_RT)

$(BUILD)/qrr: $(QRR_OBJ) $(BUILD)/libqrr.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_SRV) $(LDLIBS_CV) $(LDLIBS_RT)

$(BUILD)/qgen: $(call obj,tools/qgen.c)
	$(CC) $(LDFLAGS) -o $@ $^ -lm

# Each tests/test_<unit>.c is one Criterion binary; they may use converter code.
# CRITERION_ROOT: Criterion from a folder of unpacked Debian packages instead of the system's
# (the arm64 build's: mk/arm64.mk), found at run time through the binaries' run path.
CRITERION_LIBDIR = $(CRITERION_ROOT)/usr/lib/$(shell $(CC) -dumpmachine)
ifneq ($(CRITERION_ROOT),)
$(BUILD)/obj/tests/%.o: CFLAGS += -I$(CRITERION_ROOT)/usr/include
LDLIBS_CRITERION = -L$(CRITERION_LIBDIR) -Wl,--disable-new-dtags,-rpath,$(CRITERION_LIBDIR)
endif
$(BUILD)/tests/%: $(call obj,tests/%.c) $(CONVERT_OBJ) $(BUILD)/libqrr.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_CRITERION) -lcriterion $(LDLIBS_TEST) $(LDLIBS_CV) $(LDLIBS_RT)
# The server's tests are an HTTP client.
$(BUILD)/tests/test_server: LDLIBS_TEST := -lcurl

$(BUILD)/examples/%: $(call obj,examples/%.c) $(BUILD)/libqrr.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_RT)

examples: $(EXAMPLES)

# The Criterion binaries, built but not run.
tests: $(TESTS)

# Tests read the reference data from QRR_REFERENCE (default ../shared/reference) and
# run the programs from $(BUILD).
QRR_REFERENCE ?= $(abspath ../shared/reference)
export QRR_REFERENCE
test: all examples $(TESTS)
	@QRR_BUILD=$(abspath $(BUILD)) QRR_MAKE_ARGS="BUILD=$(BUILD) CUDA=$(CUDA) SANITIZE=$(SANITIZE) OPT='$(OPT)' CC='$(CC)' SERVER=$(SERVER)" \
	  QRR_PYTEST=$(if $(SANITIZE),sanitized,$(if $(filter 0,$(PYTEST)),off,1)) tests/run.sh $(TESTS)

bench: all $(BUILD)/gemm_bench
	QRR_BUILD=$(abspath $(BUILD)) ./bench/cpu_bench.sh

# The server under load (wrk, loopback), and llama.cpp's llama-server beside it when
# LLAMA_SERVER and LLAMA_GGUF are set (docs/benchmarks.md).
bench-serve: all
	QRR_BUILD=$(abspath $(BUILD)) ./bench/serve_bench.sh

# Batch reranking on a local Ray instance (python -m qrr.ray_rerank, 1 and 2 actors) beside
# `qrr score` in one process, on the same pairs: Ray's overhead (needs ray[data]).
bench-ray: all
	QRR_BUILD=$(abspath $(BUILD)) ./bench/ray_bench.sh

# GEMM and attention speed against this machine's measured FMA and VNNI peaks.
$(BUILD)/gemm_bench: $(call obj,bench/gemm_bench.c) $(BUILD)/libqrr.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_RT)

$(BUILD)/bench/tokenizer_bench: $(call obj,bench/tokenizer_bench.c) $(CONVERT_OBJ) $(BUILD)/libqrr.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_CV) $(LDLIBS_RT)

# Tokenizer speed beside Hugging Face tokenizers (pip install tokenizers) on the same text.
bench-tokenizer: $(BUILD)/bench/tokenizer_bench
	QRR_BUILD=$(abspath $(BUILD)) ./bench/tokenizer_bench.sh

# qrr's tokenizer against Hugging Face tokenizers on 300,000 generated strings and on every
# Unicode scalar value (pip install tokenizers==0.23.3; about two minutes).
check-tokenizer: $(BUILD)/qrr $(BUILD)/qgen $(BUILD)/qconvert  # what tools/tokenizer_diff.py runs
	python3 tools/tokenizer_diff.py --build $(BUILD) --every-code-point

clean:
	rm -rf $(BUILD)

# Fragments with the rules of one area each (fuzzing, CUDA checks, benchmarks).
-include $(wildcard mk/*.mk)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
