# Optiscope: `make run` serves the app, `make test` runs the whole suite, `make bench` the benchmarks.
PYTHON ?= python3
VENV   ?= .venv
PORT   ?= 8501
BIN    := $(VENV)/bin

.PHONY: run test bench fuzz precompute lint loadtest first-screens soak thumbs clean

# Anchor benchmarks; the long fuzz, load test, first screens, soak and cluster have their own targets (cluster: run
# bench/cluster.py after `make cluster`'s requirements); the README table runs last.
BENCHMARKS := $(filter-out bench/_common.py bench/loadtest.py bench/soak.py bench/cluster.py bench/readme_table.py \
                           bench/first_screens.py,$(wildcard bench/*.py))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install -r requirements-dev.txt
	touch $@

$(VENV)/.bench: requirements-bench.txt $(VENV)/.dev
	$(BIN)/pip install -r requirements-bench.txt
	# grad-cam's torchvision dependency would replace the pinned CPU torch; bench/cam.py stubs it.
	$(BIN)/pip install --no-deps grad-cam==1.5.7
	touch $@

run: $(VENV)/.installed
	$(BIN)/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -n auto --dist loadgroup

bench: $(VENV)/.bench
	@start=$$(date +%s); for script in $(filter-out bench/fuzz.py,$(BENCHMARKS)); do echo "== $$script"; t=$$(date +%s); OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python $$script $(BENCH_ARGS) || exit 1; echo "== $$script: $$(( $$(date +%s) - t )) s"; done; echo "== make bench: $$(( $$(date +%s) - start )) s"
	$(BIN)/python bench/readme_table.py

# Every public core entry point under hypothesis, 200 examples each (about 40 minutes here).
fuzz: $(VENV)/.dev
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python bench/fuzz.py

# Remake the shipped default views (tests recompute them; run after changing a lab's default view or its core).
precompute: $(VENV)/.installed
	$(BIN)/python -m pages._landscape_shipped
	$(BIN)/python -m pages._shipped structured
	$(BIN)/python -m pages._shipped diffusion_training
	$(BIN)/python -m pages._shipped explanations
	$(BIN)/python -m pages._shipped privacy
	$(BIN)/python -m core.guidance.shipped
	$(BIN)/python -m core.learning_rules.shipped
	$(BIN)/python -m core.curvature.compare

# 8 concurrent browser sessions against `streamlit run` (Debian's chromium): figures and time to first chart.
loadtest: $(VENV)/.dev
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python bench/loadtest.py $(LOADTEST_ARGS)

# Each lab's cold first render in a fresh process (CPU and wall seconds against the 5 s target).
first-screens: $(VENV)/.dev
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python bench/first_screens.py

# Reruns of every page in AppTest with resident memory at start and end.
soak: $(VENV)/.dev
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python bench/soak.py $(SOAK_ARGS)

# Gallery thumbnails (assets/thumbs/) and first screens at 1400 px (assets/screens/), from the browser test.
thumbs: $(VENV)/.dev
	OPTISCOPE_WRITE_THUMBS=1 OPTISCOPE_WRITE_SCREENS=1 $(BIN)/python -m pytest tests/test_browser.py -k "gallery_loads or lab_page"

# A class on one machine: N replicas behind HAProxy (sticky, health-checked) and Redis (deploy/cluster.py).
.PHONY: cluster cluster-stop
N ?= 3
$(VENV)/.cluster: requirements-cluster.txt $(VENV)/.installed
	$(BIN)/pip install -r requirements-cluster.txt
	touch $@

cluster: $(VENV)/.cluster
	OMP_NUM_THREADS=1 $(BIN)/python deploy/cluster.py start --replicas $(N)

# Ends exactly the processes `make cluster` started (deploy/.run/*.pid).
cluster-stop:
	$(BIN)/python deploy/cluster.py stop

clean:
	rm -rf $(VENV) tests/artifacts .pytest_cache .ruff_cache
