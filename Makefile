# focusbench — the one build entry point.
#
#   make              build/focusbench (CPU backend always; CUDA backend when nvcc + cuDNN are found)
#   make test         all CPU tests (what CI runs)           make SAN=1 test   the same under ASan+UBSan
#   make test-gpu     CUDA tests, on a machine with a GPU      make reproduce    the main job
#   make deps         install the Debian packages              make clean        remove build/
#
# Knobs: CUDA=0|1 forces the CUDA backend off/on (default: probe), SAN=1 sanitizers,
# CUDA_ARCH=90 (sm_90, H100/H200), NCCL=0 no NCCL backend, CC=..., V=1 verbose.

CUDA ?= auto
.DEFAULT_GOAL := all
SAN ?= 0
CUDA_ARCH ?= 90
BUILD ?= build

ifeq ($(V),1)
Q :=
else
Q := @
endif

# ---- configuration: real probes, written once per CUDA setting into build/ ----------------
CONFIG := $(BUILD)/config-cuda-$(CUDA).mk
ifeq ($(filter clean deps,$(MAKECMDGOALS)),)
include $(CONFIG)
endif
$(CONFIG): scripts/configure.sh scripts/install-deps.sh
	$(Q)scripts/configure.sh $@ $(CUDA)

# NCCL (kernels/dist/): needs the CUDA backend and nccl.h; the library is opened at run time
# (dlopen), so nothing is linked. NCCL=0 forces it off.
HAVE_NCCL := $(if $(and $(filter 1,$(USE_CUDA)),$(filter 1,$(HAVE_NCCL_H)),$(filter-out 0,$(or $(NCCL),1))),1,0)
mark = $(if $(filter 1,$(1)),✓,✗)
ifneq ($(HAVE_BLAS),)
$(info focusbench: $(call mark,$(HAVE_BLAS)) OpenBLAS($(BLAS_THREADS))  $(call mark,$(HAVE_DNNL)) oneDNN  $(call mark,$(HAVE_OPENMP)) OpenMP  $(call mark,$(HAVE_FFMPEG)) FFmpeg  $(call mark,$(HAVE_CSV)) libcsv  $(call mark,$(HAVE_GNUPLOT)) gnuplot  $(call mark,$(HAVE_CMOCKA)) cmocka  $(call mark,$(USE_CUDA)) CUDA backend (CUDA=$(CUDA), sm_$(CUDA_ARCH))  $(call mark,$(HAVE_NCCL)) NCCL  SAN=$(SAN))
endif

ifeq ($(SAN),1)
VARIANT := san
else
VARIANT := rel
endif
# Objects depend on the feature set (HAVE_CUDA is compiled in), so a CUDA and a CPU-only build
# never share a directory.
OBJ := $(BUILD)/$(VARIANT)$(if $(filter 1,$(USE_CUDA)),-cuda,)

CFLAGS_BASE := -std=c11 -g -Wall -Wextra -Wshadow -Wno-unused-parameter -D_GNU_SOURCE -MMD -MP -I.
ifeq ($(SAN),1)
CFLAGS_OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS_SAN := -fsanitize=address,undefined
else
CFLAGS_OPT := -O3
endif
ifeq ($(HAVE_MARCH_NATIVE),1)
CFLAGS_OPT += -march=native
endif
ifeq ($(HAVE_OPENMP),1)
CFLAGS_OPT += -fopenmp
LDLIBS_OMP := -fopenmp
endif

FEATURE_DEFS := -DHAVE_BLAS=$(HAVE_BLAS) -DHAVE_DNNL=$(HAVE_DNNL) -DHAVE_FFMPEG=$(HAVE_FFMPEG) -DHAVE_CSV=$(HAVE_CSV) \
                -DHAVE_CUDA=$(USE_CUDA) -DHAVE_OPENMP=$(HAVE_OPENMP) -DHAVE_NCCL=$(HAVE_NCCL)
CFLAGS := $(CFLAGS_BASE) $(CFLAGS_OPT) $(FEATURE_DEFS) $(BLAS_CFLAGS) $(FFMPEG_CFLAGS) $(CFLAGS_EXTRA)
LDLIBS := $(BLAS_LIBS) $(DNNL_LIBS) $(FFMPEG_LIBS) $(CSV_LIBS) $(LDLIBS_OMP) -lm -lpthread -ldl
ifeq ($(HAVE_NCCL),1)
CFLAGS += -I$(NCCL_INC)
endif

# ---- sources ------------------------------------------------------------------------------
LIB_SRCS := $(wildcard kernels/*.c kernels/cpu/*.c kernels/dist/*.c impl/*.c baselines/*.c datasets/*.c) \
            $(filter-out bench/main.c,$(wildcard bench/*.c))
TEST_SRCS := $(wildcard tests/*.c)
GPU_TEST_SRCS := $(wildcard tests/gpu/*.c)

ifeq ($(USE_CUDA),1)
CUDA_C_SRCS := $(wildcard kernels/cuda/*.c)
CUDA_CU_SRCS := $(wildcard kernels/cuda/*.cu)
CFLAGS += -I$(CUDA_HOME)/include -I$(CUDNN_INC)
NVCCFLAGS := -O3 -std=c++17 -I. -I$(CUDNN_INC) $(FEATURE_DEFS) -DCUDA_ARCH_BUILT=$(CUDA_ARCH) \
             -gencode arch=compute_$(CUDA_ARCH),code=sm_$(CUDA_ARCH) \
             -gencode arch=compute_$(CUDA_ARCH),code=compute_$(CUDA_ARCH) -Xcompiler -Wall,-Wextra
CUDA_LIBDIRS := -L$(CUDA_HOME)/lib -L$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/lib/stubs -L$(CUDA_HOME)/lib64/stubs \
                -L$(CUDNN_LIB)
# No -lcuda: the runtime loads the driver itself, so the binary still starts on a machine without
# a GPU driver (CI) and says so instead of failing in the dynamic loader.
LDLIBS += $(CUDA_LIBDIRS) -Wl,--as-needed -Wl,-rpath,$(CUDA_HOME)/lib:$(CUDA_HOME)/lib64:$(CUDNN_LIB) \
          -lcudnn -lcublasLt -lcublas -lcupti -lcudart -lstdc++ -Wl,--no-as-needed
endif

ifeq ($(USE_CUDA),1)
# cupti_profiler_host.h (CUPTI 13.0) includes C++'s <string> and nothing else C++: an empty file
# named `string` in a private include directory lets kernels/cuda/cupti_range.c include it as C
# (research/ecosystem.md §2.4). The host and range-profiler APIs live in libcupti (linked above).
CUPTI_SHIM := $(OBJ)/cupti-shim
$(CUPTI_SHIM)/string:
	@mkdir -p $(dir $@) && : > $@
$(OBJ)/kernels/cuda/cupti_range.o: CFLAGS += -I$(CUPTI_SHIM)
$(OBJ)/kernels/cuda/cupti_range.o: | $(CUPTI_SHIM)/string
endif

LIB_OBJS := $(LIB_SRCS:%.c=$(OBJ)/%.o) $(CUDA_C_SRCS:%.c=$(OBJ)/%.o) $(CUDA_CU_SRCS:%.cu=$(OBJ)/%.cu.o)
TEST_OBJS := $(TEST_SRCS:%.c=$(OBJ)/%.o)
GPU_TEST_OBJS := $(GPU_TEST_SRCS:%.c=$(OBJ)/%.o)

GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
$(OBJ)/bench/version_info.o: $(wildcard .git/index)
$(OBJ)/bench/version_info.o: CFLAGS += -DFOCUSBENCH_GIT_COMMIT='"$(GIT_COMMIT)"'

LIB := $(OBJ)/libfocusbench.a
ifeq ($(SAN),1)
BIN := $(OBJ)/focusbench
else
BIN := $(BUILD)/focusbench
endif
TEST_BIN := $(OBJ)/run_tests
GPU_TEST_BIN := $(OBJ)/run_gpu_tests

.PHONY: all test test-gpu reproduce deps deps-torch clean features fixtures
all: $(BIN)

features:
	$(Q)scripts/configure.sh $(CONFIG) $(CUDA)

$(OBJ)/%.o: %.c $(CONFIG)
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(OBJ)/%.cu.o: %.cu $(CONFIG)
	@mkdir -p $(dir $@)
	@echo "  NVCC  $<"
	$(Q)$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@echo "  AR    $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(OBJ)/bench/main.o $(LIB)
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS_OPT) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(TEST_OBJS): CFLAGS += $(CMOCKA_CFLAGS)
$(TEST_BIN): $(TEST_OBJS) $(LIB)
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS_OPT) $(LDFLAGS_SAN) -o $@ $^ $(CMOCKA_LIBS) $(LDLIBS)

$(GPU_TEST_OBJS): CFLAGS += $(CMOCKA_CFLAGS)
$(GPU_TEST_BIN): $(GPU_TEST_OBJS) $(OBJ)/tests/test_util.o $(OBJ)/tests/test_runner.o $(LIB)
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS_OPT) $(LDFLAGS_SAN) -o $@ $^ $(CMOCKA_LIBS) $(LDLIBS)

# Tests run with two BLAS/OpenMP threads (the CI machine's cores) unless told otherwise.
test: $(TEST_BIN) $(BIN)
	$(Q)OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-2} OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} \
	  FOCUSBENCH_BIN=$(BIN) $(TEST_BIN) $(TESTS)

test-gpu:
ifeq ($(USE_CUDA),1)
	$(Q)$(MAKE) --no-print-directory $(GPU_TEST_BIN) $(BIN)
	$(Q)$(GPU_TEST_BIN) $(TESTS)
else
	@echo "test-gpu: the CUDA backend is not built (need nvcc and cuDNN; see 'make features')" >&2
	@exit 1
endif

# Regenerates the committed PyTorch fixtures (needs Debian's python3-torch: make deps-torch).
fixtures:
	/usr/bin/python3 scripts/make_fixtures.py tests/fixtures

deps-torch:
	scripts/install-deps.sh --torch

reproduce: $(BIN)
	$(Q)scripts/reproduce.sh $(BIN)

deps:
	scripts/install-deps.sh

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(GPU_TEST_OBJS:.o=.d) $(OBJ)/bench/main.d
