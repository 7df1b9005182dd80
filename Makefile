# Cria: the commands a user runs. `make test` is what CI runs.
SWIFT ?= swift
RELEASE := -c release -Xswiftc -enable-testing

.PHONY: setup build test test-debug fixtures clean

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

clean:
	rm -rf .build
