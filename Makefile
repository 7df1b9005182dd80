# Cria: the commands a user runs. `make test` is what CI runs.
SWIFT ?= swift
RELEASE := -c release -Xswiftc -enable-testing

.PHONY: config-reference setup build test test-debug test-slurm fuzz fixtures clean bench bench-compare bench-sweep bench-scale check-keras-roundtrip demo compare-keras parity-recipe

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c release

# Tests run in release mode: the parity tests push whole networks through the
# kernels, which is 10-50x slower in a debug build. The real Python clients (pandas,
# TensorBoard, nbformat, Jupyter) come from .venv, built once by scripts/python-env.sh;
# under CI=true a check that finds a client missing fails instead of skipping.
test: setup
	$(SWIFT) build --build-tests $(RELEASE)
	CRIA_PYTHON="$$(bash scripts/python-env.sh)" $(SWIFT) test --skip-build $(RELEASE)

test-debug: setup
	CRIA_PYTHON="$$(bash scripts/python-env.sh)" $(SWIFT) test

# Experiments/slurm/sweep.sbatch on a real one-node Slurm cluster started here and stopped
# at the end (installs slurm-wlm and munge when missing; must run as root, as CI does): array
# sweeps merged equal the unsharded sweep, a task cancelled mid-trial and resubmitted keeps
# its finished trial, and TensorBoard ($$CRIA_PYTHON with tensorboard) shows the sweep.
# Built with the same flags as `make test`, so after it nothing is rebuilt.
test-slurm: setup
	$(SWIFT) build $(RELEASE) --product cria
	CRIA_PYTHON="$$(bash scripts/python-env.sh)" bash scripts/test-slurm.sh

# The mutation fuzzer over every input format (FuzzTests), ten times the cases `make test`
# runs; CRIA_FUZZ_CASES is a percentage of the default counts, CRIA_FUZZ_SEED the base seed.
CRIA_FUZZ_CASES ?= 1000
fuzz: setup
	$(SWIFT) build --build-tests $(RELEASE)
	CRIA_FUZZ_CASES=$(CRIA_FUZZ_CASES) $(SWIFT) test --skip-build $(RELEASE) --filter FuzzTests

# Rewrites the reference tables of Experiments/README.md from the table of config keys
# (ConfigKeys.swift); ConfigKeysTests fails while they are stale.
config-reference: setup
	$(SWIFT) build $(RELEASE) --product cria
	$$($(SWIFT) build $(RELEASE) --show-bin-path)/cria config reference --update Experiments/README.md

# Regenerates the committed Keras fixtures (needs: pip install tensorflow-cpu tf-keras h5py).
fixtures:
	python3 Tests/Fixtures/generate/make_fixtures.py
	python3 Tests/Fixtures/generate/make_data_fixtures.py
	python3 Tests/Fixtures/generate/make_augmentation_draws.py
	python3 Tests/Fixtures/generate/make_adam_reference_f64.py
	CRIA_EXPORT_TRAJECTORY_BATCHES=$(CURDIR)/.build/trajectory-batches.npy $(SWIFT) test --filter TrajectoryBatchExport
	python3 Tests/Fixtures/generate/make_trajectory_fixture.py .build/trajectory-batches.npy

# Inference speed on this machine: a table (see Benchmarks/README.md); JSON with ARGS=--json.
bench: setup
	$(SWIFT) build -c release --scratch-path .build-bench
	$$($(SWIFT) build -c release --scratch-path .build-bench --show-bin-path)/cria bench $(ARGS)

# Cria vs ONNX Runtime vs Keras/TF, interleaved rounds, medians and ratios (ROUNDS, THREADS, MODEL);
# training steps at each fine-tune depth against Keras and PyTorch (TRAIN=0 skips, INFERENCE=0 only them).
bench-compare: setup
	bash Benchmarks/compare.sh

# The alpaca sweep's grid (one repeat) end to end with cria, against one Keras recipe run
# in the same run (TRIALS=N times about N trials spread over the grid). Appends to Benchmarks/results/sweep-time.jsonl.
bench-sweep: setup
	bash Benchmarks/sweep_time.sh

clean:
	rm -rf .build

# Cria writes a Keras 3 legacy .h5 and .weights.h5 (SavedModelRoundTripTests with
# CRIA_WRITE_ROUNDTRIP), Keras 3 loads both and records its predictions
# (needs: pip install tensorflow-cpu h5py). To refresh the committed fixture:
#   make check-keras-roundtrip ROUNDTRIP_DIR=Tests/Fixtures/roundtrip
ROUNDTRIP_DIR ?= .build/keras-roundtrip
check-keras-roundtrip: setup
	$(SWIFT) build --build-tests $(RELEASE)
	CRIA_WRITE_ROUNDTRIP=$(abspath $(ROUNDTRIP_DIR)) $(SWIFT) test --skip-build $(RELEASE) --filter SavedModelRoundTripTests
	python3 Tests/Fixtures/generate/check_cria_saves.py $(ROUNDTRIP_DIR)

# The main job: sets everything up, builds, runs the alpaca study when the data is
# present ($CRIA_ALPACA_DIR, default ../shared/data/alpaca), else the Fashion-MNIST quickstart.
CRIA_ALPACA_DIR ?= $(abspath ../shared/data/alpaca)
export CRIA_ALPACA_DIR
demo: build
	@bash scripts/demo.sh

# Cria and Keras run the same recipe on the same data, interleaved; prints both
# histories, wall time per phase, peak RSS and the ratios (SEEDS="1 2 3").
compare-keras: build
	python3 scripts/compare_keras.py

# Decoding + resizing the alpaca images: Cria vs Keras's image_dataset_from_directory (needs tensorflow).
bench-data: build
	python3 Benchmarks/data_speed.py

# Cost per image as the dataset grows: Fashion-MNIST at 160² with 10,000 / 30,000 / 60,000
# images (one frozen epoch each; SIZES="..."), wall time, peak RSS and RssAnon, then the
# alpaca pixel cache built and reused. JSON lines in Benchmarks/results/scale.jsonl.
bench-scale: build
	CRIA_BIN=$$($(SWIFT) build -c release --show-bin-path)/cria python3 Benchmarks/scale.py

# Cria's side of the cross-validated Keras parity study: the recipe, the recipe with BN in
# inference mode, flip only and no augmentation, on FOLDS folds x SEEDS seeds (consecutive),
# each compared fold by fold with Notebooks-export/parity/keras-cv.jsonl. Writes
# Notebooks-export/parity/cria-vs-keras-cv.md and cria-cv.jsonl; rerun to resume.
FOLDS ?= 10
SEEDS ?= 1 2 3
parity-recipe: build
	FOLDS=$(FOLDS) SEEDS="$(SEEDS)" bash scripts/parity_recipe.sh
