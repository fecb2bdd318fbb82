# paretofab: two commands from a bare machine.
#   make demo   bootstrap .venv, then run the main job
#   make test   bootstrap .venv, then the default (fast) test suite
# Others: make test-slow (slow-marked tests), make bench (benchmark tables), make clean.

PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
JOBS    ?= 2

.PHONY: demo test test-slow bench clean venv

venv: $(STAMP)

# torch first, pinned, from the local CPU wheel: a bare `torch` requirement would pull CUDA.
$(STAMP): pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/paretofab demo

test: $(STAMP)
	$(VPY) -m pytest -n $(JOBS) -q

test-slow: $(STAMP)
	$(VPY) -m pytest -n $(JOBS) -q -m slow

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(VPY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
