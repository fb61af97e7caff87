# Kill points (lib/killpoint.h): a separate build of the library with
# -DARENA_KILLPOINTS under build/kp/ (never the shipped library), the
# kill-point arena-worker for exec'd workers, and tests/kp/test_killpoints.c
# (outside tests/test_*.c: it needs the kill-point build, not the plain one).
#   make killpoints   runs it (in make check)
KP_DIR := build/kp
KP_OBJ := $(LIB_SRC:%.c=$(KP_DIR)/%.o)

$(KP_DIR)/lib/%.o: lib/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) -DARENA_KILLPOINTS -Ilib -fvisibility=hidden -c -o $@ $<

$(KP_DIR)/arena-worker: tools/arena-worker.c $(KP_OBJ)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(KP_OBJ) $(LDFLAGS) $(LIBS) -ldl

$(KP_DIR)/test_killpoints: tests/kp/test_killpoints.c tests/testutil.h $(KP_OBJ)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS) -Ilib -Itests -o $@ $< $(KP_OBJ) $(LDFLAGS) $(LIBS) -lcmocka -ldl

.SECONDARY: $(KP_OBJ)
.PHONY: killpoints kp-killpoints kp-nopoll
killpoints: kp-killpoints kp-nopoll

kp-killpoints: $(KP_DIR)/test_killpoints $(KP_DIR)/arena-worker
	$(Q)ARENA_KP_WORKER=$(KP_DIR)/arena-worker timeout -k 10 600 $(KP_DIR)/test_killpoints

CHECK_EXTRA += killpoints

# The lost-wake-up tests of test_pool, built on the kill-point library and
# run with ARENA_TEST_NO_POLL=1: no reaper poll, no supervision tick, no
# 250 ms worker idle check hides a lost wake-up (it shows as a reap that
# times out); then once more with the sleeper's and the waker's race windows
# widened by ~20 us (ARENA_TEST_WIDEN, lib/killpoint.h): with evc.h's old
# evc_prepare this fails within seconds (a 5 s reap), fixed it passes.
$(KP_DIR)/test_pool: tests/test_pool.c tests/testutil.h $(KP_OBJ)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS) -Ilib -Itests -o $@ $< $(KP_OBJ) $(LDFLAGS) $(LIBS) -lcmocka -ldl

kp-nopoll: $(KP_DIR)/test_pool
	$(Q)for t in test_no_lost_wakeup test_no_lost_wakeup_reapers test_no_lost_wakeup_producers test_submit_taken_by_reaper test_worker_stale_announcement; do \
		echo "== test_pool $$t, no polls"; \
		ARENA_TEST_NO_POLL=1 ARENA_TEST_FILTER=$$t timeout -k 10 300 $(KP_DIR)/test_pool || exit 1; \
	done
	$(Q)echo "== test_pool test_no_lost_wakeup, no polls, widened race windows (ARENA_TEST_WIDEN)"; \
	ARENA_TEST_WIDEN=1 ARENA_TEST_NO_POLL=1 ARENA_TEST_FILTER=test_no_lost_wakeup \
		timeout -k 10 300 $(KP_DIR)/test_pool
	$(Q)echo "== test_pool test_submit_taken_by_reaper, no polls, widened race windows"; \
	ARENA_TEST_WIDEN=1 ARENA_TEST_NO_POLL=1 ARENA_TEST_FILTER=test_submit_taken_by_reaper \
		timeout -k 10 300 $(KP_DIR)/test_pool
