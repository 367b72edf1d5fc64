# minitron build. `make reproduce` runs the main job on built-in data;
# `make test` runs the test suite. Both install missing system packages.
GO ?= go
BIN := bin/minitron
RUN ?= runs/default

.PHONY: all deps build build-mpi test test-cpu test-mpi test-cuda test-long reproduce reproduce-quick bench fuzz purego clean

all: build

# apt_install installs Debian packages $(1), as root or else through sudo.
apt_install = (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1)) || \
	(sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1))

# Debian packages the build and tests need: OpenBLAS for matrix products,
# Open MPI for the data-parallel build (bin/minitron-mpi) and its tests.
deps:
	@if ! ls /usr/include/cblas.h /usr/include/*/cblas.h 2>/dev/null | grep -q . || ! ls /usr/lib/*/libopenblas.so /usr/lib/libopenblas.so 2>/dev/null | grep -q .; then \
		echo "installing libopenblas-dev"; \
		$(call apt_install,libopenblas-dev); \
	fi
	@if ! command -v mpirun >/dev/null || ! pkg-config --exists ompi-c 2>/dev/null; then \
		echo "installing openmpi-bin libopenmpi-dev"; \
		$(call apt_install,openmpi-bin libopenmpi-dev pkg-config); \
	fi

build: deps
	$(GO) build -o $(BIN) ./cmd/minitron

# The binary for distributed runs (mpirun, srun): Open MPI's libmpi linked
# in; started without a launcher it runs alone like bin/minitron.
build-mpi: deps
	$(GO) build -tags minitron_mpi -o bin/minitron-mpi ./cmd/minitron

# The CI suite (.ci/run runs exactly this): the CPU suite, then the CUDA
# backend's compile check and its tests (which skip cleanly without a GPU) and
# the same CUDA C on the CPU emulator. The CUDA part installs Debian's CUDA 11.8
# dev packages (about 1.5 GB) on first use; `make test-cpu` leaves it out.
test: test-cpu test-cuda

test-cpu: deps
	$(GO) vet ./...
	$(GO) test -short -count=1 -timeout 20m ./...
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/minitron
	$(MAKE) test-mpi

# The data-parallel acceptance under mpirun (2 ranks of tiny models: about a
# minute on 2 cores): collectives, 2-rank runs equal to 1 process at every
# ZeRO stage, resumes across world sizes, a SIGKILLed rank, sharded scoring.
test-mpi: deps
	$(GO) vet -tags minitron_mpi ./...
	MINITRON_MPI_TESTS=1 $(GO) test -short -count=1 -timeout 10m -tags minitron_mpi -run 'MPI|Killed' ./comm ./distill ./importance ./cmd/minitron

test-cuda: deps
	bash scripts/install-cuda-dev.sh
	$(GO) vet -tags minitron_cuda ./...
	$(GO) build -tags minitron_cuda ./...
	$(GO) test -count=1 -tags minitron_cuda ./model/kernels/cuda/... ./gpu
	$(GO) test -short -count=1 -tags minitron_cudaemu ./model/kernels/cuda/... ./gpu
	$(GO) test -count=1 -tags minitron_cuda -run 'RunCUDA|DeviceCUDA' ./distill ./importance ./eval ./reproduce ./cmd/minitron
	$(GO) test -short -count=1 -tags minitron_cudaemu -run 'RunCUDA|DeviceCUDA' ./distill ./importance ./eval ./reproduce ./cmd/minitron
	$(GO) vet -tags minitron_cuda,minitron_mpi ./comm/... ./gpu ./distill ./cmd/minitron
	MINITRON_MPI_TESTS=1 $(GO) test -short -count=1 -tags minitron_cudaemu,minitron_mpi -run 'MPICUDAEmu' ./distill

# Longer checks that stay out of CI.
test-long: deps
	$(GO) test -count=1 -timeout 60m ./...

purego:
	CGO_ENABLED=0 $(GO) build -o bin/minitron-purego ./cmd/minitron

# DEVICE=cuda: the CUDA build (bin/minitron-cuda, make build-cuda) runs the
# training, importance scoring and evaluations on GPU 0, into runs/cuda
# unless RUN is given (a run directory holds one device's run).
DEVICE ?= cpu
reproduce: $(if $(filter cuda,$(DEVICE)),build-cuda,build)
ifeq ($(DEVICE),cuda)
	./bin/minitron-cuda reproduce --device cuda --out $(if $(filter file,$(origin RUN)),runs/cuda,$(RUN))
else
	./$(BIN) reproduce $(if $(filter-out cpu,$(DEVICE)),--device $(DEVICE) )--out $(RUN)
endif

reproduce-quick: build
	./$(BIN) reproduce --quick --out runs/quick

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./model/...

clean:
	rm -rf bin

# CUDA backend (model/kernels/cuda). Its build tag is minitron_cuda, not
# cuda: -tags cuda switches gorgonia to its own cuDNN backend.
# `make ptx` regenerates the committed PTX from csrc/*.cu (needs nvcc:
# scripts/install-cuda-dev.sh --toolkit); `make build-cuda` needs only the
# CUDA 11.8 headers and libraries (scripts/install-cuda-dev.sh).
.PHONY: ptx build-cuda build-cuda-mpi cuda-test-bin gpu-bundle
NVCC ?= nvcc
CUDA_ARCH ?= compute_80
CUDA_PKG := model/kernels/cuda
# minitron_cuda,purego drops the OpenBLAS dependency (CPU kernels in pure Go)
# for machines without libopenblas.so.0.
CUDA_TAGS ?= minitron_cuda

ptx:
	@command -v $(NVCC) >/dev/null || bash scripts/install-cuda-dev.sh --toolkit
	@set -e; for f in $(CUDA_PKG)/csrc/*.cu; do \
		echo "$(NVCC) -ptx -arch=$(CUDA_ARCH) $$f"; \
		$(NVCC) -ptx -arch=$(CUDA_ARCH) -O3 -o $(CUDA_PKG)/ptx/$$(basename $$f .cu).ptx $$f; \
	done
	cd $(CUDA_PKG) && sha256sum csrc/* > ptx/csrc.sha256

build-cuda:
	bash scripts/install-cuda-dev.sh
	$(GO) build -tags $(CUDA_TAGS) -o bin/minitron-cuda ./cmd/minitron

# Distributed GPU runs: the CUDA build with MPI (launch, host collectives,
# NCCL's unique id) and NCCL (device buffers, loaded at run time).
build-cuda-mpi: deps
	bash scripts/install-cuda-dev.sh
	$(GO) build -tags $(CUDA_TAGS),minitron_mpi -o bin/minitron-cuda-mpi ./cmd/minitron

# The parity tests as binaries to carry to a GPU machine, with the cuda
# binary for the benchmark (scripts/gpu-check.sh); pure-Go CPU kernels, so
# they need only libcuda.so.1 and a cuBLAS there.
cuda-test-bin:
	bash scripts/install-cuda-dev.sh
	$(GO) test -c -tags minitron_cuda,purego -ldflags='-s -w' -o bin/cuda-parity.test ./$(CUDA_PKG)
	$(GO) test -c -tags minitron_cuda,purego -ldflags='-s -w' -o bin/cuda-train.test ./gpu
	$(GO) test -c -tags minitron_cuda,purego -ldflags='-s -w' -o bin/cuda-distill.test ./distill
	$(GO) test -c -tags minitron_cuda,purego -ldflags='-s -w' -o bin/cuda-importance.test ./importance
	$(GO) test -c -tags minitron_cuda,purego -ldflags='-s -w' -o bin/cuda-eval.test ./eval
	$(GO) test -c -tags minitron_cuda,purego -ldflags='-s -w' -o bin/cuda-reproduce.test ./reproduce
	$(GO) test -c -tags minitron_cuda,purego -ldflags='-s -w' -o bin/cuda-cmd.test ./cmd/minitron
	$(GO) build -tags minitron_cuda,purego -ldflags='-s -w' -o bin/minitron-cuda ./cmd/minitron

# The same binaries in one archive (about 42 MB) to carry to a GPU machine
# that takes at most 64 MB; scripts/gpu-check.sh unpacks it.
gpu-bundle: cuda-test-bin
	cd bin && tar -cJf gpu-bundle.tar.xz cuda-parity.test cuda-train.test cuda-distill.test cuda-importance.test cuda-eval.test cuda-reproduce.test cuda-cmd.test minitron-cuda
