# mnist37: `make course` runs the course, `make test` checks it. Both build .venv on first use.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
BIN   := $(VENV)/bin

# Offline machines keep the MNIST archives in ../shared/data; elsewhere fastai downloads them.
ifneq ($(wildcard ../shared/data),)
export MNIST37_DATA ?= $(abspath ../shared/data)
endif

# Jupyter refuses to run as root (containers, CI machines) unless told it is on purpose.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: course test learner learner-tests learner-notebooks as-user lab venv export notebooks clean site browser bench lock

# The venv is rebuilt only when the requirements or the lock change. settings.ini declares ranges;
# requirements.lock holds the exact versions that were tested, so every machine gets the same set.
$(VENV)/.installed: settings.ini setup.py requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name mnist37 --display-name 'Python (mnist37)' >/dev/null
	touch $@

# JupyterLab's settings for this venv only (nothing in the home folder): no "Jupyter news" prompt, no update check.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
$(LAB_OVERRIDES): tools/jupyterlab-overrides.json $(VENV)/.installed
	install -D -m 644 $< $@

venv: $(VENV)/.installed $(LAB_OVERRIDES)

# After changing settings.ini's ranges: `$(PY) -m pip install -e '.[dev]'` (without the lock), `make test`,
# then `make lock` writes the versions of .venv that passed to requirements.lock.
lock:
	@test -x $(PY) || { echo "No $(VENV): run \`make venv\` first." >&2; exit 1; }
	@{ sed -n '1,2p' requirements.lock; $(PY) -m pip freeze --exclude-editable | grep -iv '^mnist37\b'; } > requirements.lock.new
	@mv requirements.lock.new requirements.lock
	@touch $(VENV)/.installed
	@echo "requirements.lock: $$(grep -c '==' requirements.lock) packages from $(VENV)"

# The kernels talk to nbconvert over Unix sockets in a private folder, not TCP on localhost: ipykernel warns,
# once per notebook, that TCP without CurveZMQ keys is plain text. The sockets' path is absolute because the
# kernel runs in nbs/; the folder is short-lived and short, as a socket's path must be.

# Execute every notebook in order, headless, into _course/, then print the chapter's results.
course: venv
	@mkdir -p _course
	@export MNIST37_RESULTS=$(CURDIR)/_course/results.json; rm -f $$MNIST37_RESULTS _course/times.txt; \
	ipc=$$(mktemp -d); trap 'rm -rf "$$ipc"' EXIT; \
	for nb in nbs/[0-9]*.ipynb; do \
	  start=$$(date +%s%N); \
	  $(BIN)/jupyter nbconvert --to notebook --execute --log-level=WARN --output-dir _course \
	    --KernelManager.transport=ipc --KernelManager.ip="$$ipc/kernel" \
	    --ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.kernel_name=mnist37 "$$nb" || exit 1; \
	  ms=$$(( ($$(date +%s%N) - start) / 1000000 )); \
	  printf '%-32s %4d.%01d s\n' "$$(basename $$nb)" $$((ms / 1000)) $$((ms % 1000 / 100)) | tee -a _course/times.txt; \
	done; \
	if [ -f $$MNIST37_RESULTS ]; then $(BIN)/mnist37 results $$MNIST37_RESULTS; \
	else echo "(the results ladder is printed once the chapter's last notebook exists)"; fi

# The library must match the notebooks, every notebook must pass in both Pythons, and so must tests/:
# - in .venv (the dev set, requirements.lock): the appendices and the index under nbdev_test (slow cells too), then
#   pytest on tests/;
# - in .venv-learner (a learner's own Python, below): each teaching notebook run alone in an empty folder, as a
#   learner runs it (every cell but the `#| bench` ones, which re-time the book's resnet18 that notebook 09 runs;
#   `make course` runs all of them, in .venv), then the library's in-process tests.
# pytest keeps about one core busy, so the learner's Python is built and its notebooks run beside it, two at a time
# on one thread each, then its tests and `as-user`; their log is printed after pytest's. nbdev_test runs two notebooks
# at once, one thread each.
test: venv browser
	$(BIN)/nbdev_export
	@if [ -n "$$(git status --porcelain -- mnist37)" ]; then \
	  git status --short -- mnist37; \
	  echo "mnist37/ differs from what nbdev_export makes of nbs/: export and commit the library." >&2; exit 1; fi
	$(PY) tools/translate.py --check
	MPLBACKEND=Agg OMP_NUM_THREADS=1 $(BIN)/nbdev_test --flags slow --timing --skip_file_re '^([_.]|[01][0-9]_)'
	@log=$$(mktemp); ($(MAKE) --no-print-directory -k learner-notebooks learner-tests as-user >$$log 2>&1; echo $$? >$$log.rc) & \
	$(BIN)/pytest tests/ --durations=8; rc=$$?; wait; \
	echo "== in a learner's Python (make learner-notebooks learner-tests as-user):"; cat $$log; lrc=$$(cat $$log.rc); \
	rm -f $$log $$log.rc; [ $$rc = 0 ] && [ $$lrc = 0 ]

# A learner's own Python, beside the dev venv, as Colab or a fresh Jupyter has it: the oldest Python that settings.ini's
# min_python allows on this machine (Debian 12's /usr/bin/python3.11, 3.11.2, whose tarfile has no extraction filter),
# with what such an environment already holds (tools/learner-python.txt), then `pip install .` with no lock and no dev
# extras, so pip brings the newest fastai and fastcore it offers. Rebuilt when those files change.
LEARNER        := .venv-learner
LEARNER_PYTHON ?= $(firstword $(wildcard /usr/bin/python3.11) python3)
$(LEARNER)/.installed: settings.ini setup.py pyproject.toml tools/learner-python.txt
	rm -rf $(LEARNER)
	$(LEARNER_PYTHON) -m venv $(LEARNER)
	$(LEARNER)/bin/python -m pip install --quiet --no-compile -r tools/learner-python.txt
	$(LEARNER)/bin/python -m pip install --quiet --no-compile .
	@$(LEARNER)/bin/python -c "import sys, fastai, fastcore, torch; print(f'learner Python {sys.version.split()[0]}: fastai {fastai.__version__}, fastcore {fastcore.__version__}, torch {torch.__version__}')"
	touch $@

# In that Python: this tree's mnist37 (its dependencies stay as pip resolved them); the library's in-process tests
# (pytest by its script, so that the installed package is imported, not the tree's); every teaching notebook copied
# alone into an empty folder and run cell by cell, as "Run all" runs it (tools/run_alone.py), LEARNER_JOBS at once.
# The tree's mnist37 is installed there once each time the library changes (a stamp file), not once per target.
LEARNER_TESTS := tests/test_data.py tests/test_design.py tests/test_fast.py tests/test_exercises.py
LEARNER_JOBS  ?= 2
LEARNER_PKG   := $(LEARNER)/.mnist37
$(LEARNER_PKG): $(LEARNER)/.installed $(wildcard mnist37/*.py mnist37/locale/*/LC_MESSAGES/*.mo)
	@$(LEARNER)/bin/python -m pip install --quiet --no-deps --no-compile --force-reinstall .
	@touch $@
learner-tests: $(LEARNER_PKG)
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(LEARNER)/bin/pytest -q -p no:cacheprovider --basetemp="$$tmp" $(LEARNER_TESTS)   # its own tmp: pytest may run beside
# Korean notebooks too (nbs/ko/): their code is byte for byte the English ones' (tests/test_translation.py), which run
# above, so only those whose exercises answer in Korean (MNIST37_LANG=ko, gettext), to keep make test in its budget.
KO_NOTEBOOKS ?= nbs/ko/01_data.ipynb nbs/ko/05_mnist_loss.ipynb nbs/ko/07_learner.ipynb
learner-notebooks: $(LEARNER_PKG)
	MPLBACKEND= OMP_NUM_THREADS=1 $(LEARNER)/bin/python tools/run_alone.py --jobs $(LEARNER_JOBS) --skip bench nbs/[01][0-9]_*.ipynb $(KO_NOTEBOOKS)
learner: learner-notebooks learner-tests

# Root ignores file permissions, so the hostile-input tests marked `as_user` run once more as AS_USER (with runuser),
# in the learner's Python: Debian's, which that user can execute (the dev venv's Python lives under /root).
AS_USER ?= nobody
as-user: $(LEARNER_PKG)
	@if [ "$$(id -u)" != 0 ]; then echo "as-user: not root, so the tests above already ran with permissions"; exit 0; fi; \
	if ! runuser -u $(AS_USER) -- $(LEARNER)/bin/python -c 'import mnist37' 2>/dev/null; then \
	  echo "as-user: skipped: $(AS_USER) cannot run $(LEARNER)/bin/python with this tree's mnist37 (folder permissions)"; exit 0; fi; \
	home=$$(mktemp -d); trap 'rm -rf "$$home"' EXIT; chown $(AS_USER) "$$home"; \
	echo "== the hostile-input tests marked as_user, as $(AS_USER):"; \
	runuser -u $(AS_USER) -- env HOME="$$home" PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg \
	  $(LEARNER)/bin/pytest -q -p no:cacheprovider -m as_user --durations=5 --basetemp="$$home/tmp" tests/test_hostile*.py

# The speed benchmark, not part of `make test`: the book's pipelines and mnist37's fast paths side by side,
# medians of repeats, into bench/results.json and bench/results.md. Options in BENCH_ARGS (see bench/README.md).
bench: venv
	$(PY) bench/run.py $(BENCH_ARGS)

# JupyterLab on the notebooks, with the project's kernel. Extra options go in LAB_ARGS,
# e.g. `make lab LAB_ARGS='--no-browser --port=8890'`.
# The notebooks are trusted first (their committed outputs are ours), so the server neither logs them as untrusted
# nor hides their HTML outputs. The signatures are kept in the venv, not the home folder: `jupyter trust` takes
# its folder from JUPYTER_DATA_DIR, the server from --NotebookNotary.data_dir.
NOTARY_DIR := $(abspath $(VENV))/share/jupyter
lab: venv
	@JUPYTER_DATA_DIR=$(NOTARY_DIR) $(BIN)/jupyter trust nbs/*.ipynb nbs/ko/*.ipynb >/dev/null && echo "Trusted the notebooks in nbs/ and nbs/ko/."
	$(BIN)/jupyter lab --notebook-dir=nbs --MappingKernelManager.default_kernel_name=mnist37 \
	  --NotebookNotary.data_dir=$(NOTARY_DIR) $(ALLOW_ROOT) $(LAB_ARGS)

# The executed course as a static site in _site/, the Korean edition (nbs/ko/) in _site/ko/ (MkDocs, mkdocs.yml),
# from the committed notebooks (nothing is run).
site: venv
	$(PY) tools/build_site.py --nbs nbs --out _site

# tests/test_site.py drives Debian's Chromium: install it when it is missing and we can (as root, with apt-get).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && exit 0; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	  echo "No chromium/chromedriver (Debian: apt-get install chromium chromium-driver): the browser tests will skip." >&2; \
	  exit 0; fi; \
	echo "Installing chromium and chromium-driver for the browser tests..."; \
	log=$$(mktemp); \
	if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver) >$$log 2>&1; then rm -f $$log; \
	else tail -5 $$log >&2; echo "Could not install chromium (log: $$log): the browser tests will skip." >&2; fi

export: venv
	$(BIN)/nbdev_export

# Re-execute the notebooks in place so their committed outputs match the code, then clean them.
notebooks: venv
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1800 \
	  --ExecutePreprocessor.kernel_name=mnist37 nbs/*.ipynb
	$(BIN)/nbdev_clean
	$(BIN)/nbdev_export

clean:
	rm -rf _course _proc _docs _site ._site-* _site_shots $(LEARNER)
