# Cria: the commands a user runs. `make test` is what CI runs.
SWIFT ?= swift
RELEASE := -c release -Xswiftc -enable-testing

.PHONY: setup build test test-debug fixtures clean bench bench-compare check-keras-roundtrip demo compare-keras

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c release

# Tests run in release mode: the parity tests push whole networks through the
# kernels, which is 10-50x slower in a debug build.
test: setup
	$(SWIFT) build --build-tests $(RELEASE)
	$(SWIFT) test --skip-build $(RELEASE)

test-debug: setup
	$(SWIFT) test

# Regenerates the committed Keras fixtures (needs: pip install tensorflow-cpu tf-keras h5py).
fixtures:
	python3 Notebooks-export/make_fixtures.py
	python3 Notebooks-export/make_data_fixtures.py
	python3 Notebooks-export/make_augmentation_draws.py
	python3 Notebooks-export/make_adam_reference_f64.py
	CRIA_EXPORT_TRAJECTORY_BATCHES=$(CURDIR)/.build/trajectory-batches.npy $(SWIFT) test --filter TrajectoryBatchExport
	python3 Notebooks-export/make_trajectory_fixture.py .build/trajectory-batches.npy

# Inference speed on this machine: a table (see Benchmarks/README.md); JSON with ARGS=--json.
bench: setup
	$(SWIFT) build -c release --scratch-path .build-bench
	$$($(SWIFT) build -c release --scratch-path .build-bench --show-bin-path)/cria bench $(ARGS)

# Cria vs ONNX Runtime vs Keras/TF, interleaved rounds, medians and ratios (ROUNDS, THREADS, MODEL).
bench-compare: setup
	bash Benchmarks/compare.sh

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
	python3 Notebooks-export/check_cria_saves.py $(ROUNDTRIP_DIR)

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
