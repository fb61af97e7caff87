# libFuzzer harnesses (tests/fuzz/, README there).
#   make fuzz         each harness for FUZZ_S seconds (default 60); new corpus
#                     entries and crashes go to build/fuzz/ (never the tree)
#   make fuzz-check   each for FUZZ_CHECK_S seconds (default 20; make check)
#   make fuzz-seeds   regenerate the seed corpora into build/fuzz/seeds
# The normal suite replays the checked-in corpora and every regression input
# (tests/fuzz/regress/<harness>/) through the same harness code built with
# $(CC), no clang needed: $(B)/tests/fuzz-replay-<harness>, run by
# tests/test_fuzz_replay.sh.
FUZZ_CC     ?= clang
FUZZ_S      ?= 60
FUZZ_CHECK_S ?= 20
FUZZ_DIR    := build/fuzz
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -g -O1 -std=gnu11 -pthread -MMD -MP -Iinclude -Ilib -Itests/fuzz \
	-fno-omit-frame-pointer $(FUZZ_SAN)
FUZZ_NAMES  := image env recv inspect channel
# Harnesses `make check` runs (all: the trust track's checks are in main).
FUZZ_CHECK_NAMES ?= image env recv inspect channel
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/%.o)
FUZZ_BIN    := $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz-%)
FUZZ_REPLAY := $(FUZZ_NAMES:%=$(B)/tests/fuzz-replay-%)
FUZZ_HDRS   := tests/fuzz/fuzz_util.h $(wildcard lib/*.h) include/arena.h

$(FUZZ_DIR)/lib/%.o: lib/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/fuzz-%: tests/fuzz/fuzz_%.c $(FUZZ_HDRS) $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZLD  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJ) $(LIBS)

# The replay drivers: normal compiler, the library's objects (the harnesses
# use a few private functions, e.g. chan_create).
$(B)/tests/fuzz-replay-%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(FUZZ_HDRS) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS) -Ilib -Itests/fuzz -o $@ $< tests/fuzz/replay.c $(LIB_OBJ) $(LDFLAGS) $(LIBS)

$(B)/tests/fuzz-mkseeds: tests/fuzz/mkseeds.c $(FUZZ_HDRS) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Ilib -Itests/fuzz -o $@ $< $(LIB_OBJ) $(LDFLAGS) $(LIBS)

tests: $(FUZZ_REPLAY)

.PHONY: fuzz fuzz-check fuzz-build fuzz-seeds
fuzz-build: $(FUZZ_BIN)

fuzz-seeds: $(B)/tests/fuzz-mkseeds
	$(Q)rm -rf $(FUZZ_DIR)/seeds && $< $(FUZZ_DIR)/seeds && echo "seeds in $(FUZZ_DIR)/seeds"

# One harness: corpus growth in build/fuzz/corpus/NAME, crashes as
# build/fuzz/crash-NAME-*; the checked-in seeds are read, never written.
define fuzz_run
	mkdir -p $(FUZZ_DIR)/corpus/$(1) && \
	dict=; [ -f tests/fuzz/$(1).dict ] && dict=-dict=tests/fuzz/$(1).dict; \
	$(FUZZ_DIR)/fuzz-$(1) $(FUZZ_DIR)/corpus/$(1) tests/fuzz/corpus/$(1) \
		$$dict -max_total_time=$(2) -timeout=30 -rss_limit_mb=2048 \
		-artifact_prefix=$(FUZZ_DIR)/crash-$(1)- -print_final_stats=1 \
		>$(FUZZ_DIR)/log-$(1).txt 2>&1; rc=$$?; \
	grep -E "^#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|cov:" $(FUZZ_DIR)/log-$(1).txt | tail -2; \
	if [ $$rc -ne 0 ]; then echo "fuzz-$(1): FAILED (see $(FUZZ_DIR)/log-$(1).txt; make the crash file a regression input in tests/fuzz/regress/$(1)/)"; exit 1; fi
endef

fuzz: fuzz-build
	$(Q)for n in $(FUZZ_NAMES); do echo "== fuzz-$$n for $(FUZZ_S) s"; \
		$(MAKE) --no-print-directory fuzz-one-$$n FUZZ_T=$(FUZZ_S) || exit 1; done

fuzz-check: fuzz-build
	$(Q)for n in $(FUZZ_CHECK_NAMES); do echo "== fuzz-$$n for $(FUZZ_CHECK_S) s"; \
		$(MAKE) --no-print-directory fuzz-one-$$n FUZZ_T=$(FUZZ_CHECK_S) || exit 1; done

fuzz-one-%: $(FUZZ_DIR)/fuzz-%
	$(Q)$(call fuzz_run,$*,$(FUZZ_T))

CHECK_EXTRA += fuzz-check
.SECONDARY: $(FUZZ_LIB_OBJ)
