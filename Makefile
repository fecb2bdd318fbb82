# paretofab: two commands from a bare machine.
#   make demo   bootstrap .venv, then run the main job
#   make test   bootstrap .venv, then the default (fast) test suite
# Others: make test-slow (slow-marked tests), make bench (benchmark tables), make clean.
#   make bench-costmodel   cost-model tables from the stored Yosys runs only (minutes, no synthesis)
#   make calibrate         every calibration grid + the random DOE draws, calibration (seed 1) and
#                          held out (seed 0), per family (hours; JOBS Yosys at a time; stop it any
#                          time, run it again to resume; then `make refit`)
#   make refit             refit data/coefficients.json and data/logic_cells_fit.json (the Lattice cell fits,
#                          dot / sparse and SWA) from the stored runs

PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
JOBS    ?= 2

.PHONY: demo test test-slow bench bench-costmodel calibrate refit clean venv

DOE_COUNT ?= 400
DOE_HELDOUT_COUNT ?= 200
#: more held-out draws, family:seed:count as they were run: seed 2 after the model's terms were chosen on
#: seed 0's, ECP5's seed 4 after its calibration draw was doubled
DOE_FRESH ?= xc7:2:60 xcup:2:60 ice40:2:60 ecp5:2:60 ecp5:4:100
SWA_DOE_COUNT ?= 120
SWA_DOE_HELDOUT_COUNT ?= 60
#: more held-out SWA draws, family:seed:count as they were run: seed 2 after the terms were chosen on
#: seed 0's, seed 3 after the int-V magnitude term (swa.INT_V_ABS_SUFFIX) was
SWA_FRESH ?= xc7:2:20 ecp5:2:20 xcup:2:12 ice40:2:12 xc7:3:20 ecp5:3:20 xcup:3:20 ice40:3:12
#: SWA calibration draws grown past SWA_DOE_COUNT (the same seed 1, continued), family:count as it was run
SWA_MORE ?= xc7:240
#: dot / sparse calibration draws grown past DOE_COUNT (the same seed 1, continued), family:count as it was run:
#: ECP5, whose abc9 tail is the model's widest (fourteenth session)
DOE_MORE ?= ecp5:800
FAMILIES  ?= xc7 xcup ice40 ecp5
#: families with their own standalone multipliers (xcup uses xc7's: same fabric; its memories differ)
PRIMITIVE_FAMILIES ?= xc7 ice40 ecp5
#: iCE40 draws its SWA kernels within its own bounds (costmodel.store.SWA_DOE_FAMILY_BOUNDS)
SWA_FAMILIES ?= xc7 xcup ecp5 ice40
#: families whose sparse lanes (index mux + multiplier) are synthesized alone (data/lanes.csv)
LANE_FAMILIES ?= ecp5 xc7
CAL       := $(VPY) -m costmodel.calibrate

venv: $(STAMP)

# torch first, pinned, from the local CPU wheel: a bare `torch` requirement would pull CUDA.
$(STAMP): pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e '.[test,flow,qonnx]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/paretofab demo

test: $(STAMP)
	$(VPY) -m pytest -n $(JOBS) -q --durations=25

test-slow: $(STAMP)
	$(VPY) -m pytest -n $(JOBS) -q -m slow

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(VPY) $$b || exit 1; done

bench-costmodel: $(STAMP)
	$(VPY) bench/costmodel.py --no-synth

calibrate: $(STAMP)
	for t in $(PRIMITIVE_FAMILIES); do $(CAL) primitives --target $$t --jobs $(JOBS) || exit 1; done
	for t in $(FAMILIES); do $(CAL) buffers --target $$t --jobs $(JOBS) || exit 1; done
	$(CAL) muxes --target xc7 --jobs $(JOBS)
	$(CAL) engines --grid dense --grid sparse --grid smallint --target xc7 --jobs $(JOBS)
	$(CAL) engines --grid swa --target xc7 --jobs $(JOBS)
	$(CAL) engines --grid order --target xc7 --jobs $(JOBS)
	for t in $(SWA_FAMILIES); do \
	  $(CAL) engines --grid swa-doe --split calibration --count $(SWA_DOE_COUNT) --target $$t --jobs $(JOBS) || exit 1; \
	  $(CAL) engines --grid swa-doe --split heldout --count $(SWA_DOE_HELDOUT_COUNT) --target $$t --jobs $(JOBS) || exit 1; \
	done
	for tsn in $(SWA_FRESH); do sn=$${tsn#*:}; \
	  $(CAL) engines --grid swa-doe --split heldout --seed $${sn%%:*} --count $${tsn##*:} --target $${tsn%%:*} --jobs $(JOBS) || exit 1; \
	done
	for tn in $(SWA_MORE); do \
	  $(CAL) engines --grid swa-doe --split calibration --count $${tn##*:} --target $${tn%%:*} --jobs $(JOBS) || exit 1; \
	done
	for t in $(FAMILIES); do \
	  $(CAL) engines --grid doe --split calibration --count $(DOE_COUNT) --target $$t --jobs $(JOBS) || exit 1; \
	  $(CAL) engines --grid doe --split heldout --count $(DOE_HELDOUT_COUNT) --target $$t --jobs $(JOBS) || exit 1; \
	done
	for tsn in $(DOE_FRESH); do sn=$${tsn#*:}; \
	  $(CAL) engines --grid doe --split heldout --seed $${sn%%:*} --count $${tsn##*:} --target $${tsn%%:*} --jobs $(JOBS) || exit 1; \
	done
	for tn in $(DOE_MORE); do \
	  $(CAL) engines --grid doe --split calibration --count $${tn##*:} --target $${tn%%:*} --jobs $(JOBS) || exit 1; \
	done
	# last: a family's lanes start with those of its stored sparse calibration engines
	for t in $(LANE_FAMILIES); do $(CAL) lanes --target $$t --jobs $(JOBS) || exit 1; done
	# ECP5's multipliers under abc9 delay targets, those of the stored engines first
	$(CAL) mult-curves --target ecp5 --jobs $(JOBS)
	# the Lattice engines and SWA kernels of both draws packed by nextpnr (iCE40 logic cells, ECP5 TRELLIS_COMB)
	for t in ice40 ecp5; do for e in mac swa; do for s in calibration heldout; do \
	  $(CAL) logic-cells --split $$s --target $$t --engines $$e --jobs $(JOBS) || exit 1; \
	done; done; done

refit: $(STAMP)
	$(VPY) -m costmodel.resources xc7 xcup ice40 ecp5
	$(VPY) -m costmodel.packing

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
