# The optional MPI part (issue 17): include/arena_mpi.h, mpi/*.c, built with
# mpicc into $(B)/libarena_mpi.a and .so, never a dependency of the core
# library or its tests.  Built and tested only when mpicc is found.
#   make mpi          the library, its test program and arena-mpi-bench
#   make mpi-check    the MPI tests under mpirun (part of `make check`)
#   make mpi-bench    arena-mpi-bench over 4 ranks (part of `make bench`)
#   make mpi-install  header and libraries under PREFIX (after make install)
MPICC ?= $(shell command -v mpicc 2>/dev/null)

.PHONY: mpi mpi-check mpi-bench mpi-install
CHECK_EXTRA += mpi-check
BENCH_EXTRA += mpi-bench

ifeq ($(MPICC),)
mpi mpi-check mpi-bench mpi-install:
	@echo "MPI part skipped: mpicc not found (Open MPI: tools/install-deps mpi," \
		"or apt-get install openmpi-bin libopenmpi-dev)"
else
MPI_SRC    := $(wildcard mpi/*.c)
MPI_OBJ    := $(MPI_SRC:mpi/%.c=$(B)/mpi/obj/%.o)
MPI_PIC    := $(MPI_SRC:mpi/%.c=$(B)/mpi/pic/%.o)
MPI_TOBJ   := $(MPI_SRC:mpi/%.c=$(B)/mpi/testing/%.o)
MPI_STATIC := $(B)/libarena_mpi.a
MPI_SHARED := $(B)/libarena_mpi.so.$(VERSION)
MPI_TEST   := $(B)/mpi/mpi-test
MPI_BENCH  := $(B)/tools/arena-mpi-bench
MPI_CFLAGS  = $(CFLAGS) -Impi

mpi: $(MPI_STATIC) $(MPI_SHARED) $(MPI_TEST) $(MPI_BENCH)

$(B)/mpi/obj/%.o: mpi/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  MPICC   $@")
	$(Q)$(MPICC) $(MPI_CFLAGS) -fvisibility=hidden -c -o $@ $<

$(B)/mpi/pic/%.o: mpi/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  MPICC   $@")
	$(Q)$(MPICC) $(MPI_CFLAGS) -fvisibility=hidden -fPIC -c -o $@ $<

# The tests' copy, with the fault points (ARENA_MPI_FAULT) compiled in.
$(B)/mpi/testing/%.o: mpi/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  MPICC   $@")
	$(Q)$(MPICC) $(MPI_CFLAGS) -DARENA_MPI_TESTING -fvisibility=hidden -c -o $@ $<

$(MPI_STATIC): $(MPI_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)$(LD) -r -o $(B)/libarena_mpi-all.o $^
	$(Q)objcopy --localize-hidden $(B)/libarena_mpi-all.o
	$(Q)rm -f $@ && ar rcs $@ $(B)/libarena_mpi-all.o

$(MPI_SHARED): $(MPI_PIC) mpi/libarena_mpi.map $(SHARED)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(MPICC) -shared -Wl,-soname,libarena_mpi.so.$(SOMAJOR) \
		-Wl,--version-script=mpi/libarena_mpi.map -Wl,-z,defs \
		-Wl,-rpath,'$$ORIGIN' -o $@ $(MPI_PIC) -L$(B) -larena $(LDFLAGS)
	$(Q)ln -sf libarena_mpi.so.$(VERSION) $(B)/libarena_mpi.so.$(SOMAJOR)
	$(Q)ln -sf libarena_mpi.so.$(SOMAJOR) $(B)/libarena_mpi.so

$(MPI_TEST): mpi/tests/mpi-test.c $(MPI_TOBJ) $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  MPICCLD $@")
	$(Q)$(MPICC) $(MPI_CFLAGS) -o $@ $< $(MPI_TOBJ) $(STATIC) $(LDFLAGS) $(LIBS)

$(MPI_BENCH): mpi/bench/arena-mpi-bench.c $(MPI_STATIC) $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  MPICCLD $@")
	$(Q)$(MPICC) $(MPI_CFLAGS) -o $@ $< $(MPI_STATIC) $(STATIC) $(LDFLAGS) $(LIBS) -lm

# libarena.mpi (python/libarena/mpi.py) loads $(B)/libarena_mpi.so.1: have it
# built before the Python tests run (python/tests/test_mpi.py skips without).
python-check: $(MPI_SHARED)

mpi-check: mpi
	$(Q)B=$(B) ./mpi/tests/run-mpi-tests.sh

mpi-bench: mpi
	$(Q)B=$(B) ./mpi/bench/run-mpi-bench.sh $(MPI_BENCH_ARGS)

mpi-install: $(MPI_STATIC) $(MPI_SHARED)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR)
	install -m 644 include/arena_mpi.h $(DESTDIR)$(INCDIR)/arena_mpi.h
	install -m 644 $(MPI_STATIC) $(DESTDIR)$(LIBDIR)/libarena_mpi.a
	install -m 755 $(MPI_SHARED) $(DESTDIR)$(LIBDIR)/libarena_mpi.so.$(VERSION)
	ln -sf libarena_mpi.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libarena_mpi.so.$(SOMAJOR)
	ln -sf libarena_mpi.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libarena_mpi.so
endif
