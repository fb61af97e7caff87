# pybench (bench/py/): the seed's experiment in Python, what Python users run
# today (the seed's copy and Manager, Pool, shared_memory, torch's DataLoader)
# side by side with libarena's Python module, in one run.
#   make pybench         the whole benchmark (a few minutes); PYBENCH_ARGS=...
#                        e.g. PYBENCH_ARGS="--workloads seed --json r.json"
#   make pybench-check   smoke test: every mode at tiny counts, JSON/CSV valid,
#                        missing peers skipped (a few seconds)
# Debian's Python by default (numpy, torch); PYTHON= to choose another.  The
# libarena rows use the module mk/python.mk builds into $(B)/python.
PYTHON ?= /usr/bin/python3
PYBENCH_ARGS ?=
PYBENCH_DEPS := $(if $(wildcard mk/python.mk),python)
PYBENCH_ENV = PYTHONPATH=$(CURDIR)/$(B)/python$${PYTHONPATH:+:$$PYTHONPATH}

BENCH_EXTRA += pybench
CHECK_EXTRA += pybench-check

.PHONY: pybench pybench-check
pybench: $(PYBENCH_DEPS)
	$(Q)$(PYBENCH_ENV) $(PYTHON) bench/py/pybench.py $(PYBENCH_ARGS)

pybench-check: $(PYBENCH_DEPS)
	$(Q)$(PYBENCH_ENV) $(PYTHON) bench/py/smoke.py
