# The Python module (python/): a CPython extension over the static library,
# plus the pure-Python package.  Built against Debian's interpreter by
# default (the pyenv `python3` first on PATH does not see Debian's numpy and
# pytest); PYTHON=/path/to/python3 chooses another.
#   make python        build/python/libarena/ (import with PYTHONPATH=build/python)
#   make python-check  pytest over python/tests (run by `make check`)
#   make python-check-san   the same, extension and library under ASan+UBSan
#   make python-install-check   pip install ./python into a fresh venv, offline
PYTHON      ?= /usr/bin/python3
PY_INC      := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)
PY_SUFFIX   := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))' 2>/dev/null)
PY_DIR      := $(B)/python/libarena
PY_EXT      := $(PY_DIR)/_libarena$(PY_SUFFIX)
PY_PKG_SRC  := $(wildcard python/libarena/*.py python/libarena/*.pyi) python/libarena/py.typed
PY_PKG      := $(PY_PKG_SRC:python/libarena/%=$(PY_DIR)/%)
PY_PIC_LIB  := $(B)/python/libarena-pic.a
# The extension's sources (python/_libarena/, one file a concern) and their
# objects: not in $(PY_DIR), which is the importable package.
PY_EXT_SRC  := $(sort $(wildcard python/_libarena/*.c))
PY_EXT_OBJ  := $(PY_EXT_SRC:python/_libarena/%.c=$(B)/python/obj/%.o)
# The parts of the C API that arrive over time (see python/_libarena/_libarena.h).
PY_DEFS     := $(if $(shell grep -l 'worker_init' include/arena.h),-DHAVE_WORKER_INIT) \
	       $(if $(shell grep -l 'arena_pool_submit_range' include/arena.h),-DHAVE_SUBMIT_RANGE) \
	       $(if $(shell grep -l 'keep_fds' include/arena.h),-DHAVE_KEEP_FDS) \
	       $(if $(shell grep -l 'arena_pool_result_space' include/arena.h),-DHAVE_RESULT_SPACE)

.PHONY: python python-check python-check-san python-install-check
# `make` builds the module when the interpreter's headers are there
# (./tools/install-deps python installs them); `make python` insists.
ifneq ($(wildcard $(PY_INC)/Python.h),)
all: python
endif
python: $(PY_EXT) $(PY_PKG)

# The static library again, position-independent, for the extension.
$(PY_PIC_LIB): $(PIC_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AR      $@")
	$(Q)$(LD) -r -o $(B)/python/libarena-pic-all.o $^
	$(Q)objcopy --localize-hidden $(B)/python/libarena-pic-all.o
	$(Q)rm -f $@ && ar rcs $@ $(B)/python/libarena-pic-all.o

# Each object with its .d next to it (-MMD -MP in CFLAGS): editing
# _libarena.h rebuilds them all.  PY_DEFS follow include/arena.h, hence the
# explicit prerequisite.  Hidden by default: the .so exports PyInit__libarena
# only (PyMODINIT_FUNC), whatever the files share through _libarena.h.
$(B)/python/obj/%.o: python/_libarena/%.c include/arena.h
	@test -n "$(PY_INC)" || { echo "python.mk: $(PYTHON) not found (PYTHON=...)"; exit 1; }
	@test -f "$(PY_INC)/Python.h" || { echo "python.mk: no Python.h for $(PYTHON): ./tools/install-deps python"; exit 1; }
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(filter-out -Wmissing-prototypes -Wstrict-prototypes,$(CFLAGS)) -fPIC \
		-fvisibility=hidden $(PY_DEFS) -I$(PY_INC) -c -o $@ $<

$(PY_EXT): $(PY_EXT_OBJ) $(PY_PIC_LIB) python/_libarena/exports.map
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) -shared -Wl,--version-script=python/_libarena/exports.map -o $@ $(PY_EXT_OBJ) \
		$(PY_PIC_LIB) $(LDFLAGS) $(LIBS)

# Before the split the extension was one file, its dependencies in
# $(B)/python/_libarena.d: a build folder of then would look for
# python/_libarena.c.  Removed before the top Makefile reads the *.d files.
$(shell rm -f $(B)/python/_libarena.d)

$(PY_DIR)/%: python/libarena/%
	@mkdir -p $(dir $@)
	$(Q)cp $< $@

# pytest exits 5 when it collected nothing: that is a failure here.
PYTEST_ARGS ?= -q
PYTEST_FILES ?= .
python-check: python
	$(Q)cd python/tests && PYTHONPATH=$(CURDIR)/$(B)/python LIBARENA_SRC=$(CURDIR) \
		$(PYTHON) -m pytest $(PYTEST_ARGS) -p no:cacheprovider $(PYTEST_FILES)

# The same suite with the extension and the library under ASan+UBSan (the
# interpreter is not instrumented: the runtimes are preloaded; Python's own
# allocations at exit are not leaks of ours).
PY_SAN_B := build/san-address-undefined
python-check-san:
	$(Q)$(MAKE) --no-print-directory SAN=address,undefined python
	$(Q)cd python/tests && LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
		ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1 LIBARENA_SAN=1 \
		PYTHONPATH=$(CURDIR)/$(PY_SAN_B)/python $(PYTHON) -m pytest $(PYTEST_ARGS) -p no:cacheprovider $(PYTEST_FILES)

# A fresh venv, installed from ./python with no network (Debian's setuptools).
python-install-check:
	$(Q)PYTHON=$(PYTHON) python/tests/install_check.sh

CHECK_EXTRA += python-check python-check-san python-install-check
