# mk/fuzz.mk — libFuzzer targets (fuzz/fuzz_<target>.c), built with clang and the address and
# undefined-behaviour sanitizers into $(FUZZ_BUILD), separately from the normal build.
#   make fuzz                      build every target, make the seeds, run each FUZZ_SECONDS
#   make fuzz FUZZ_SECONDS=600     the long run (docs/security.md records one)
#   make fuzz FUZZ_SECONDS=0       build and seed only
#   make fuzz-run-<target>         run one target (e.g. fuzz-run-qrr_file) for FUZZ_SECONDS
#   make fuzz-regress              replay tests/regress/<target>/* through the targets
# Needs clang's libFuzzer runtime (Debian: libclang-rt-14-dev, pulled in by clang-14).

FUZZ_CC      ?= clang
FUZZ_BUILD   ?= $(BUILD)/fuzz
FUZZ_SECONDS ?= 10
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -g -O1 -fPIC -ffp-contract=off -D_GNU_SOURCE $(WARN) $(INCLUDES) -Itools/qrr \
                $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_LIBS    := -ljansson -lxxhash -lz -lutf8proc -lpcre2-8 -ldl -lpthread -lm

FUZZ_SRC     := $(wildcard fuzz/fuzz_*.c)
FUZZ_NAMES   := $(patsubst fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_BINS    := $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_NAMES))
# Everything a target may call: the library (which holds no CUDA code; LIB_SRC leaves out
# the CUDA module's), the converter's readers, and the qrr tool's commands except main.c (only
# the dispatch) and the server (no target reaches it; it would need libmicrohttpd).
FUZZ_LIB_SRC := $(LIB_SRC) $(CONVERT_SRC) \
                $(filter-out tools/qrr/main.c tools/qrr/cmd_serve.c server/%,$(QRR_SRC))
FUZZ_LIB_OBJ := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_LIB_SRC))

.PHONY: fuzz fuzz-build fuzz-seeds fuzz-regress
fuzz: fuzz-build fuzz-seeds
	@set -e; if [ "$(FUZZ_SECONDS)" != 0 ]; then \
	  for t in $(FUZZ_NAMES); do $(MAKE) --no-print-directory fuzz-run-$$t; done; fi

fuzz-build: $(FUZZ_BINS)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/libqrr-fuzz.a: $(FUZZ_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/fuzz/fuzz_%.o $(FUZZ_BUILD)/libqrr-fuzz.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LIBS)

# Seeds come from the reference data and small converted models (fuzz/make_seeds.sh).
fuzz-seeds: $(FUZZ_BUILD)/seeds/.done
$(FUZZ_BUILD)/seeds/.done: fuzz/make_seeds.sh $(BUILD)/qgen $(BUILD)/qconvert
	QRR_BUILD=$(BUILD) fuzz/make_seeds.sh $(FUZZ_BUILD)/seeds
	touch $@

# The working corpus grows in $(FUZZ_BUILD)/corpus/<target>; crashes land in
# $(FUZZ_BUILD)/artifacts/ (copy each to tests/regress/<target>/ and add its test).
fuzz-run-%: $(FUZZ_BUILD)/fuzz_% fuzz-seeds
	@mkdir -p $(FUZZ_BUILD)/corpus/$* $(FUZZ_BUILD)/artifacts
	@echo "== fuzz_$* for $(FUZZ_SECONDS) s"
	QRR_FUZZ_MODEL=$(abspath $(FUZZ_BUILD)/seeds/model.qrr) \
	  $(FUZZ_BUILD)/fuzz_$* -max_total_time=$(FUZZ_SECONDS) -timeout=30 -rss_limit_mb=4096 \
	  -print_final_stats=1 -close_fd_mask=$(if $(filter score_jsonl,$*),3,0) \
	  -artifact_prefix=$(FUZZ_BUILD)/artifacts/$*- \
	  $(FUZZ_BUILD)/corpus/$* $(FUZZ_BUILD)/seeds/$*

# Every saved crash input, through its target once (no fuzzing): all must pass.
fuzz-regress: $(FUZZ_BINS) fuzz-seeds
	@set -e; for t in $(FUZZ_NAMES); do \
	  if [ -d tests/regress/$$t ] && [ -n "$$(ls tests/regress/$$t)" ]; then \
	    QRR_FUZZ_MODEL=$(abspath $(FUZZ_BUILD)/seeds/model.qrr) \
	      $(FUZZ_BUILD)/fuzz_$$t -runs=1 tests/regress/$$t/*; fi; done

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
