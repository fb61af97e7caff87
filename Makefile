# libarena: plain GNU make.  `make help` lists the targets.
#   make            library, tools, tests, benchmarks into build/
#   make test       dependencies, then every test program (tests/run)
#   make check      make test, then the same suite under ASan+UBSan and TSan
#   make bench      arena-bench on the seed's workload (the main job)
#   make SAN=address,undefined test / make SAN=thread test
#   make install PREFIX=/usr/local DESTDIR=   /  make uninstall
# Quiet by default; V=1 shows the commands.

VERSION  := 1.0.0
SOMAJOR  := 1
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
BINDIR   ?= $(PREFIX)/bin
PCDIR    ?= $(LIBDIR)/pkgconfig
DESTDIR  ?=

CC       ?= cc
LD       ?= ld
CFLAGS   ?= -O2 -g
LDFLAGS  ?=
override CFLAGS += -std=gnu11 -Wall -Wextra -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wno-unused-parameter -pthread -MMD -MP -Iinclude
override LDFLAGS += -pthread

comma := ,
SAN ?=
ifeq ($(SAN),)
B := build
else
B := build/san-$(subst $(comma),-,$(SAN))
override CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -O1
override LDFLAGS += -fsanitize=$(SAN)
# Undefined behaviour fails the test instead of only printing.
ifneq ($(findstring undefined,$(SAN)),)
override CFLAGS += -fno-sanitize-recover=undefined
endif
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRC  := $(wildcard lib/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
PIC_OBJ  := $(LIB_SRC:%.c=$(B)/pic/%.o)
TOOLS    := arena-bench arena-worker arena-inspect
TOOL_BIN := $(TOOLS:%=$(B)/tools/%)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(B)/tests/%)
TEST_SO  := $(B)/tests/libtesttask.so
BENCH_SRC:= $(wildcard bench/*.c)
BENCH_BIN:= $(BENCH_SRC:bench/%.c=$(B)/bench/%)
STATIC   := $(B)/libarena.a
SHARED   := $(B)/libarena.so.$(VERSION)
LIBS     := -luring

.PHONY: all lib tools tests benches test check bench deps install uninstall clean help
all: lib tools tests benches
lib: $(STATIC) $(SHARED) $(B)/libarena.pc
tools: $(TOOL_BIN)
tests: $(TEST_BIN) $(TEST_SO)
benches: $(BENCH_BIN)

help:
	@sed -n '2,9p' Makefile

# Dependencies from Debian: installs liburing-dev and libcmocka-dev when missing.
deps:
	$(Q)./tools/install-deps

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) -Ilib -fvisibility=hidden -c -o $@ $<

$(B)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) -Ilib -fvisibility=hidden -fPIC -c -o $@ $<

# One relocatable object with the hidden symbols made local: the static
# library exports arena_* only, like the shared one.
$(STATIC): $(LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)$(LD) -r -o $(B)/libarena-all.o $^
	$(Q)objcopy --localize-hidden $(B)/libarena-all.o
	$(Q)rm -f $@ && ar rcs $@ $(B)/libarena-all.o

$(SHARED): $(PIC_OBJ) lib/libarena.map
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,libarena.so.$(SOMAJOR) \
		-Wl,--version-script=lib/libarena.map -Wl,-z,defs \
		-o $@ $(PIC_OBJ) $(LDFLAGS) $(LIBS)
	$(Q)ln -sf libarena.so.$(VERSION) $(B)/libarena.so.$(SOMAJOR)
	$(Q)ln -sf libarena.so.$(SOMAJOR) $(B)/libarena.so

$(B)/libarena.pc: lib/libarena.pc.in Makefile
	@mkdir -p $(B)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

# Tools and tests link the static library and use only the public header.
# arena-bench is tools/arena-bench.c plus its modes in tools/bench_*.c.
BENCH_MODES := $(wildcard tools/bench_*.c)
$(B)/tools/arena-bench: tools/arena-bench.c $(BENCH_MODES) $(wildcard tools/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS) -Itools -o $@ tools/arena-bench.c $(BENCH_MODES) $(STATIC) $(LDFLAGS) $(LIBS) -lm

$(B)/tools/%: tools/%.c $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS) -rdynamic -o $@ $< $(STATIC) $(LDFLAGS) $(LIBS) -ldl -lm

$(B)/bench/%: bench/%.c $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS) -Ilib -o $@ $< $(STATIC) $(LDFLAGS) $(LIBS) -lm

$(B)/tests/%: tests/%.c tests/testutil.h $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS) -Ilib -Itests -o $@ $< $(STATIC) $(LDFLAGS) $(LIBS) -lcmocka -ldl

$(TEST_SO): tests/testtask.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS) -fPIC -shared -o $@ $<

# Builds use every CPU unless make already runs with -j (its jobserver);
# the tests themselves always run one at a time (tests/run).
NPROC      := $(shell nproc 2>/dev/null || echo 1)
BUILD_JOBS  = $(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(NPROC))

test: deps
	$(Q)$(MAKE) --no-print-directory $(BUILD_JOBS) all
	$(Q)B=$(B) SAN=$(SAN) CC="$(CC)" ./tests/run $(TEST_BIN)

# The optional parts (python/, mpi/, fuzzers, model, valgrind) keep their rules
# in mk/*.mk.  Each appends to CHECK_EXTRA the targets `make check` runs after
# the three suites, and to BENCH_EXTRA what `make bench` runs after arena-bench.
CHECK_EXTRA :=
BENCH_EXTRA :=
-include $(sort $(wildcard mk/*.mk))

check: test
	$(Q)$(MAKE) --no-print-directory SAN=address,undefined test
	$(Q)$(MAKE) --no-print-directory SAN=thread test
	$(Q)for t in $(CHECK_EXTRA); do $(MAKE) --no-print-directory $$t || exit 1; done

bench: deps
	$(Q)$(MAKE) --no-print-directory $(BUILD_JOBS) tools
	$(Q)$(B)/tools/arena-bench $(BENCH_ARGS)
	$(Q)for t in $(BENCH_EXTRA); do $(MAKE) --no-print-directory $$t || exit 1; done

install: lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(PCDIR)
	install -m 644 include/arena.h $(DESTDIR)$(INCDIR)/arena.h
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libarena.a
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/libarena.so.$(VERSION)
	ln -sf libarena.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libarena.so.$(SOMAJOR)
	ln -sf libarena.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libarena.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
		lib/libarena.pc.in > $(DESTDIR)$(PCDIR)/libarena.pc

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/arena.h $(DESTDIR)$(LIBDIR)/libarena.a \
		$(DESTDIR)$(LIBDIR)/libarena.so.$(VERSION) \
		$(DESTDIR)$(LIBDIR)/libarena.so.$(SOMAJOR) \
		$(DESTDIR)$(LIBDIR)/libarena.so $(DESTDIR)$(PCDIR)/libarena.pc

clean:
	rm -rf build

-include $(shell find $(B) -name '*.d' 2>/dev/null)
