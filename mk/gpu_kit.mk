# mk/gpu_kit.mk — the GPU check kit, for a bare GPU machine that gets only the repository and
# one carried folder. `make gpu-kit` writes $(KIT): the programs and the CUDA module
# (bin/libqrr_cuda.so.0, found by libqrr beside the program) built for sm_90 and linked so
# that they need nothing from outside but glibc, libstdc++, libgcc and the CUDA toolkit's
# cuBLASLt (jansson, xxHash, zlib, utf8proc, PCRE2 and the CUDA runtime are linked in
# statically), the reference data (xz, trimmed by bench/kit_trim.py), the Python scripts and
# run.sh (bench/gpu_check.sh), and profile.sh (bench/gpu_profile.sh), which times every
# kernel of a forward under Nsight Compute.
# `make gpu-dryrun` runs that kit in an empty directory with the CPU standing in for the GPU.
# How to use it on a GPU machine: docs/cuda.md. CI builds neither.

KIT         ?= $(BUILD)/gpu-kit
KIT_MAX_MIB := 48
KIT_PY      := $(KIT)/py/transformers_gpu.py $(KIT)/py/reference_scores.py \
               $(KIT)/py/score_diff.py $(KIT)/py/gpu_report.py $(KIT)/py/ncu_summary.py
KIT_FILES   := $(KIT)/run.sh $(KIT)/profile.sh $(KIT)/data/reference.tar.xz $(KIT)/data/shared_query.jsonl $(KIT_PY)

.PHONY: gpu-kit gpu-dryrun

ifeq ($(CUDA)$(if $(CU_SRC),1,0)$(SANITIZE),11)
KIT_LIBS := -Wl,-Bstatic -ljansson -lxxhash -lz -lutf8proc -lpcre2-8 -Wl,-Bdynamic -ldl -lpthread -lm
KIT_CUDA := -L$(CUDA_HOME)/lib64 -lcublasLt -lcudart_static -lstdc++ -ldl -lrt -lpthread -lm
KIT_BIN  := $(addprefix $(KIT)/bin/,qrr qconvert qgen gpu_bench gemm_peak $(CUDA_MOD_NAME))
# No run path: run.sh finds the toolkit's cuBLASLt on the GPU machine and says where.
# Host debug sections are dropped (kernels keep -lineinfo for compute-sanitizer).
KIT_LINK  = $(CC) -o $@ $^ $(KIT_LIBS) && strip --strip-debug $@

# The kit's qrr has no `serve` (libmicrohttpd would need a dozen more libraries there).
KIT_QRR_OBJ := $(filter-out $(call obj,tools/qrr/main.c tools/qrr/cmd_serve.c $(wildcard server/*.c)),$(QRR_OBJ))
$(KIT)/obj/main.o: tools/qrr/main.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(call inc_for,$<) -DQRR_NO_SERVER -c $< -o $@

$(KIT)/bin/qrr: $(KIT_QRR_OBJ) $(KIT)/obj/main.o $(BUILD)/libqrr.a
	@mkdir -p $(dir $@)
	$(KIT_LINK)

$(KIT)/bin/qconvert: $(call obj,convert/main.c) $(CONVERT_OBJ) $(BUILD)/libqrr.a
	@mkdir -p $(dir $@)
	$(KIT_LINK)

$(KIT)/bin/qgen: $(call obj,tools/qgen.c)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ -lm && strip --strip-debug $@

# These two call the CUDA runtime (gpu_bench for free memory) or the kernels themselves.
$(KIT)/bin/gpu_bench $(KIT)/bin/gemm_peak: KIT_LIBS += $(KIT_CUDA)

$(KIT)/bin/gpu_bench: $(call obj,bench/gpu_bench.c) $(BUILD)/libqrr.a
	@mkdir -p $(dir $@)
	$(KIT_LINK)

$(KIT)/bin/gemm_peak: $(BUILD)/obj/bench/gemm_peak.o $(CU_OBJ) $(BUILD)/libqrr.a
	@mkdir -p $(dir $@)
	$(KIT_LINK)

$(KIT)/bin/$(CUDA_MOD_NAME): $(CUDA_MOD_OBJ) runtime/cuda_module.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,$(CUDA_MOD_NAME) -Wl,--version-script=runtime/cuda_module.map \
	  -Wl,-z,defs -o $@ $(CUDA_MOD_OBJ) $(KIT_CUDA) && strip --strip-debug $@

$(KIT)/run.sh: bench/gpu_check.sh
	@mkdir -p $(dir $@)
	cp $< $@ && chmod +x $@

$(KIT)/profile.sh: bench/gpu_profile.sh
	@mkdir -p $(dir $@)
	cp $< $@ && chmod +x $@

$(KIT)/py/%.py: bench/%.py
	@mkdir -p $(dir $@)
	cp $< $@

$(KIT)/py/reference_scores.py: tools/reference_scores.py
	@mkdir -p $(dir $@)
	cp $< $@

$(KIT)/data/shared_query.jsonl: bench/shared_query.jsonl
	@mkdir -p $(dir $@)
	cp $< $@

# The reference data, compressed, with the tiny checkpoints' embedding rows that no
# reference prompt reads made repeats of row 0 (bench/kit_trim.py): 31 MB become about 3.
$(KIT)/data/reference.tar.xz: bench/kit_trim.py $(shell find $(QRR_REFERENCE) -type f 2>/dev/null)
	@test -f $(QRR_REFERENCE)/scores_public.jsonl || \
	  { echo "no reference data in $(QRR_REFERENCE) (set QRR_REFERENCE)"; exit 1; }
	@mkdir -p $(dir $@)
	rm -rf $(BUILD)/gpu-kit-ref
	python3 bench/kit_trim.py $(QRR_REFERENCE) $(BUILD)/gpu-kit-ref
	tar -C $(BUILD)/gpu-kit-ref -cf - . | xz -6 -T2 > $@.tmp && mv $@.tmp $@
	rm -rf $(BUILD)/gpu-kit-ref

# MANIFEST: what the kit is (its first line heads the summary), then the check that every
# program finds its libraries and needs none the kit should hold, and the size cap.
gpu-kit: $(KIT_BIN) $(KIT_FILES)
	@{ echo "kit $$(git describe --always --dirty 2>/dev/null || echo unknown)," \
	        "built $$(date -u +%Y-%m-%dT%H:%MZ), nvcc $$($(NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')" \
	        "for sm_90 with -lineinfo"; \
	   echo "cc: $$($(CC) --version | head -n 1)"; \
	   echo "glibc symbols needed up to: $$(objdump -T $(KIT_BIN) | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)," \
	        "libstdc++: $$(objdump -T $(KIT_BIN) | grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -n 1)"; \
	   echo "files:"; cd $(KIT) && find . -type f ! -name MANIFEST | sort | xargs sha256sum; \
	 } > $(KIT)/MANIFEST
	@python3 -c 'import ast, sys; [ast.parse(open(f).read(), f) for f in sys.argv[1:]]' $(KIT_PY)
	@echo "== libraries of the kit's programs (only glibc, libstdc++, libgcc and CUDA from outside)"
	@bash $(KIT)/run.sh --libs-only
	@size=$$(du -sm $(KIT) | cut -f1); echo "== $(KIT): $$(du -sh $(KIT) | cut -f1) (cap $(KIT_MAX_MIB) MiB)"; \
	 test $$size -le $(KIT_MAX_MIB) || { echo "the kit is over $(KIT_MAX_MIB) MiB"; exit 1; }

gpu-dryrun: gpu-kit
	bash bench/gpu_dryrun.sh $(KIT)

else
gpu-kit gpu-dryrun:
	@echo "the GPU kit needs nvcc (CUDA=1 and the CUDA toolkit; this build has CUDA=$(CUDA))" \
	      "and no SANITIZE"; false
endif
