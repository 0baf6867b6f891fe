# otlib: `make reproduce` runs every notebook (quick profile on CPU); `make test` runs the whole suite.
# Both create .venv if missing and install the pinned set first. PROFILE=full runs the GPU profile.

PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= quick
ONLY    ?=
PY      := $(VENV)/bin/python
EXTRAS  := peers$(if $(filter full,$(PROFILE)),$(comma)gpu,)
comma   := ,

# The official benchmark files: ../shared/w2bench (developers and CI) when present, else the loader
# downloads them into data/w2bench/ (checksummed). An explicit OTLIB_DATA_DIR always wins.
SHARED_W2 := $(abspath ../shared/w2bench/Mix3toMix10)
ifeq ($(origin OTLIB_DATA_DIR), undefined)
ifneq ($(wildcard $(SHARED_W2)/2_v1.pt),)
export OTLIB_DATA_DIR := $(SHARED_W2)
endif
endif

.PHONY: install reproduce test notebooks lab clean site

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed-$(EXTRAS)

# Every run writes under results/<profile>/<notebook>/<run id>/ and leaves tracked files alone. The benchmark
# files come from $OTLIB_DATA_DIR when set (the runner itself also finds ../shared beside the checkout).
# VERBOSE=1 shows Papermill's own output (cell markers, kernel warnings).
reproduce: install
	$(PY) -m otlib.reproduce --profile $(PROFILE) $(if $(ONLY),--only $(ONLY),) $(if $(VERBOSE),--verbose,)

# Library tests and nbval over the committed notebooks (quick profile, CPU). OTLIB_PROFILE=quick makes a
# notebook committed with other parameters fail at once (the canary); TQDM_DISABLE keeps nbval output quiet.
# WORKERS pytest-xdist processes share the work; --dist loadscope keeps each notebook's cells (and each test
# module) on one worker, in order. Much of the suite is XLA compilation, which uses one core, so 2 workers keep
# both cores of CI busy: the whole suite took 25.7 min of pytest on a 2-core CPU, about 15 % less than one
# process (10 to 25 min with the compilation cache below, as the shared machine's speed varies). WORKERS=0 runs
# everything in this process.
# The same programs are compiled again and again (by the tests of one module, by resumed runs, by notebooks
# that share the library's steps), so the suite keeps JAX's persistent compilation cache in .jax_cache/
# (keyed by the program, the JAX version and the backend; an unreadable entry is recompiled): a resumed-run
# test took 26 s with it against 50 s without, on a clean cache. Delete the folder to measure cold compiles.
WORKERS ?= 2
test: install
	OTLIB_PROFILE=quick TQDM_DISABLE=1 JAX_PLATFORMS=$${JAX_PLATFORMS:-cpu} \
	JAX_COMPILATION_CACHE_DIR=$${JAX_COMPILATION_CACHE_DIR:-$(CURDIR)/.jax_cache} \
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg --durations=15 -n $(WORKERS) --dist loadscope

# The one way to change tracked outputs: re-run the quick profile with its default parameters, store the
# outputs in the committed notebooks and the figures in figures/quick/.
notebooks: install
	$(PY) -m otlib.reproduce --profile quick --store $(if $(ONLY),--only $(ONLY),) $(if $(VERBOSE),--verbose,)

# JupyterLab at the repository root (notebooks/, results/ and figures/ all browsable). A kernel left idle
# with no tab connected is shut down after LAB_CULL_S seconds (closing a tab does not stop its kernel).
LAB_CULL_S ?= 1200
lab: install
	$(PY) -m jupyter lab --ServerApp.root_dir="$(CURDIR)" \
	    --MappingKernelManager.cull_idle_timeout=$(LAB_CULL_S) --MappingKernelManager.cull_interval=60 \
	    --MappingKernelManager.cull_connected=False

# A static HTML site of the executed notebooks in build/site/ (open build/site/index.html): one page per notebook
# and an index with every table next to the published values and every figure as a thumbnail. Built with
# nbconvert from the committed notebooks (PROFILE=full: the stored full runs in results/full/ where they exist),
# nothing re-executed; math pre-rendered to MathML, no CDN. Exits non-zero on a broken local link.
site: install
	$(PY) -m otlib.report.site --profile $(PROFILE) --out build/site

clean:
	rm -rf results/ .pytest_cache/
