# mk/cuda.mk — CUDA rules beyond the main Makefile (which builds the CUDA module,
# libqrr_cuda.so.0, when CUDA=1): the GPU benchmark helpers and a resource report of the
# kernels. Each program here that links CUDA gets the toolkit's run path.
#   make CUDA=1 cuda-tools    build/gpu_bench (libqrr on a workload file) and build/gemm_peak
#   make CUDA=1 cuda-report   registers, shared memory and spills of every kernel (sm_90)
# A GPU machine runs bench/gpu_check.sh from the kit mk/gpu_kit.mk builds (docs/cuda.md).

ifeq ($(CUDA),1)
ifneq ($(CU_SRC),)

.PHONY: cuda-tools cuda-report
cuda-tools: $(BUILD)/gpu_bench $(BUILD)/gemm_peak

# gpu_bench scores through libqrr (which loads the module beside it, in $(BUILD)) and asks the
# CUDA runtime for the device's free memory.
$(BUILD)/gpu_bench: $(call obj,bench/gpu_bench.c) $(BUILD)/libqrr.a | $(CUDA_MOD)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_CV) $(LDLIBS_RT) -L$(CUDA_HOME)/lib64 \
	  -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart

# gemm_peak calls the GEMM kernels directly.
$(BUILD)/gemm_peak: bench/gemm_peak.cu $(CU_OBJ) $(BUILD)/libqrr.a
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -o $@ $< $(CU_OBJ) $(BUILD)/libqrr.a $(LDLIBS_RT) \
	  -L$(CUDA_HOME)/lib64 -lcublasLt -lcudart -Xlinker -rpath,$(CUDA_HOME)/lib64

cuda-report:
	@for f in $(CU_SRC); do \
	  echo "== $$f"; \
	  $(NVCC) $(NVFLAGS) -Xptxas -v -c $$f -o /dev/null 2>&1 | \
	    grep -E "Compiling entry|registers|spill" | sed -e 's/ptxas info    : //'; \
	done

else
cuda-tools cuda-report:
	@echo "no CUDA sources to build"; false
endif
else
cuda-tools cuda-report:
	@echo "CUDA is off in this build (nvcc not found, or CUDA=0): nothing to do"; false
endif
