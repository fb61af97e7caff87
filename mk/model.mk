# The Spin model of the sleep/wake protocol (tests/model/pool.pml).
#   make model    every configuration must verify (no error), and every
#                 mutant must produce a counterexample (so the model cannot
#                 silently become vacuous).  Exhaustive search (no BITSTATE),
#                 COLLAPSE compression; about 2 min and < 1 GB a run on
#                 2 cores (tests/model/README.md has the counts).
MODEL_DIR  := build/model
MODEL_SRC  := tests/model/pool.pml
# The eventcount alone with several wakers live at once (pool.pml has one
# worker at a time); its configurations and mutants are named evc-*.
EVC_SRC    := tests/model/evc.pml
# name:-D flags (configurations that must verify).  The flags go to both
# spin -a (the model's macros) and the C compiler (pan's options, such as
# -DREVERSE: search order only); neither uses the other's names.
# WORKER_AWAITS / REAPER_AWAITS / PRODUCER_AWAITS: that side's own sleep
# replaced by "blocked until its condition holds" (checked in the
# configurations without them).  BATCH: tasks a producer submits in one call
# (default 1).  HINT0, PROD_TIMEOUTS, PROD_FUTEX, SPACE_NEED, ERR (an entry
# that cannot be taken), STOP_ANY / FAIL_ANY (a stop or a pool failure at
# any moment): see pool.pml.
MODEL_CFGS := t2d2:-DNTASKS=2+-DDEPTH=2+-DMAXDEATH=0 \
	t1d1k1:-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=1+-DMAXATT=2 \
	t1d1k1a1:-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=1+-DMAXATT=1 \
	t2d1w:-DNTASKS=2+-DDEPTH=1+-DMAXDEATH=0+-DWORKER_AWAITS \
	t1d1r2:-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=0+-DNREAP=2 \
	t1d1k1r2w:-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=1+-DNREAP=2+-DWORKER_AWAITS \
	t3d1b3wc:-DNTASKS=3+-DDEPTH=1+-DBATCH=3+-DMAXDEATH=0+-DWORKER_AWAITS+-DREAPER_AWAITS \
	t3d1p2wch:-DNTASKS=3+-DDEPTH=1+-DMAXDEATH=0+-DNPROD=2+-DWORKER_AWAITS+-DREAPER_AWAITS+-DHINT0 \
	t4d1b2p2wcat:-DNTASKS=4+-DDEPTH=1+-DBATCH=2+-DMAXDEATH=0+-DNPROD=2+-DWORKER_AWAITS+-DREAPER_AWAITS+-DPRODUCER_AWAITS+-DPROD_TIMEOUTS \
	t5d2g2b5wce:-DNTASKS=5+-DDEPTH=2+-DSPACE_NEED=2+-DBATCH=5+-DMAXDEATH=0+-DWORKER_AWAITS+-DREAPER_AWAITS+-DERR \
	t4d1b2p2wcae:-DNTASKS=4+-DDEPTH=1+-DBATCH=2+-DMAXDEATH=0+-DNPROD=2+-DWORKER_AWAITS+-DREAPER_AWAITS+-DPRODUCER_AWAITS+-DERR \
	t3d1b3wcs:-DNTASKS=3+-DDEPTH=1+-DBATCH=3+-DMAXDEATH=0+-DWORKER_AWAITS+-DREAPER_AWAITS+-DSTOP_ANY+-DFAIL_ANY \
	t2d1ws:-DNTASKS=2+-DDEPTH=1+-DMAXDEATH=0+-DWORKER_AWAITS+-DSTOP_ANY+-DFAIL_ANY
# evc.pml: NW wakers, NPUB units of work each, NSLEEP sleepers (1: the
# pipe's owner; 2: and a futex sleeper); SHARED_WOKEN: the workers' shared
# "woken" word (evc.h evc_wake_fd_shared), which the library uses.
# (Two sleepers with 4 units of work, or with 3 wakers, do not fit in 2 GB.)
# DEATHS=1: a waker may be killed at each point of its wake-up, after its
# claim included; the sleeper's watch on the workers wakes it and a
# replacement publishes the rest.
MODEL_CFGS += evc-w2p2s1:-DNW=2+-DNPUB=2+-DNSLEEP=1 \
	evc-w3p1s1:-DNW=3+-DNPUB=1+-DNSLEEP=1 \
	evc-w2p1s2:-DNW=2+-DNPUB=1+-DNSLEEP=2 \
	evc-shared-w2p2s1:-DSHARED_WOKEN+-DNW=2+-DNPUB=2+-DNSLEEP=1 \
	evc-shared-w3p1s1:-DSHARED_WOKEN+-DNW=3+-DNPUB=1+-DNSLEEP=1 \
	evc-shared-w2p1s2:-DSHARED_WOKEN+-DNW=2+-DNPUB=1+-DNSLEEP=2 \
	evc-death-w2p2s1:-DDEATHS=1+-DNW=2+-DNPUB=2+-DNSLEEP=1 \
	evc-death-shared-w2p1s1:-DSHARED_WOKEN+-DDEATHS=1+-DNW=2+-DNPUB=1+-DNSLEEP=1 \
	evc-death-shared-w2p1s2:-DSHARED_WOKEN+-DDEATHS=1+-DNW=2+-DNPUB=1+-DNSLEEP=2 \
	evc-death-shared-w3p1s1:-DSHARED_WOKEN+-DDEATHS=1+-DNW=3+-DNPUB=1+-DNSLEEP=1
# make model MODEL_MORE=1: also larger configurations (each < 1 GB), and
# three changes that lose no wake-up (README.md: "Tried, not mutants").
ifeq ($(MODEL_MORE),1)
MODEL_CFGS += t2d2r2w:-DNTASKS=2+-DDEPTH=2+-DMAXDEATH=0+-DNREAP=2+-DWORKER_AWAITS \
	t3d2b3w:-DNTASKS=3+-DDEPTH=2+-DBATCH=3+-DMAXDEATH=0+-DWORKER_AWAITS \
	t4d2b4wc:-DNTASKS=4+-DDEPTH=2+-DBATCH=4+-DMAXDEATH=0+-DWORKER_AWAITS+-DREAPER_AWAITS \
	evc-w2p3s1:-DNW=2+-DNPUB=3+-DNSLEEP=1 \
	evc-death-shared-w2p2s1:-DSHARED_WOKEN+-DDEATHS=1+-DNW=2+-DNPUB=2+-DNSLEEP=1 \
	t3d1k1b3wc:-DNTASKS=3+-DDEPTH=1+-DBATCH=3+-DMAXDEATH=1+-DWORKER_AWAITS+-DREAPER_AWAITS \
	t3d1k1b2p2wca:-DNTASKS=3+-DDEPTH=1+-DBATCH=2+-DMAXDEATH=1+-DNPROD=2+-DWORKER_AWAITS+-DREAPER_AWAITS+-DPRODUCER_AWAITS \
	t3d1b2p2wcf:-DNTASKS=3+-DDEPTH=1+-DBATCH=2+-DMAXDEATH=0+-DNPROD=2+-DWORKER_AWAITS+-DREAPER_AWAITS+-DPROD_FUTEX \
	noreread-t3d2w:-DMUT_NOREREAD+-DNTASKS=3+-DDEPTH=2+-DMAXDEATH=0+-DWORKER_AWAITS \
	noreread-t1d1k1r2w:-DMUT_NOREREAD+-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=1+-DNREAP=2+-DWORKER_AWAITS \
	drainbefore-t3d2w:-DMUT_DRAINBEFORE+-DNTASKS=3+-DDEPTH=2+-DMAXDEATH=0+-DWORKER_AWAITS \
	drainbefore-t1d1k1r2w:-DMUT_DRAINBEFORE+-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=1+-DNREAP=2+-DWORKER_AWAITS \
	lateoffer-t2d1w:-DMUT_LATEOFFER+-DNTASKS=2+-DDEPTH=1+-DMAXDEATH=0+-DWORKER_AWAITS \
	lateoffer-t3d1b3wc:-DMUT_LATEOFFER+-DNTASKS=3+-DDEPTH=1+-DBATCH=3+-DMAXDEATH=0+-DWORKER_AWAITS+-DREAPER_AWAITS \
	t4d1b4wce:-DNTASKS=4+-DDEPTH=1+-DBATCH=4+-DMAXDEATH=0+-DWORKER_AWAITS+-DREAPER_AWAITS+-DERR \
	t4d1b2p2wcas:-DNTASKS=4+-DDEPTH=1+-DBATCH=2+-DMAXDEATH=0+-DNPROD=2+-DWORKER_AWAITS+-DREAPER_AWAITS+-DPRODUCER_AWAITS+-DSTOP_ANY+-DFAIL_ANY
endif
# make model MODEL_BIG=1: the products that do not fit in 2 GB (the real
# sleeps of two producers or two reapers with the pending batch, a batch
# with the real reaper sleep, a death with a waiting producer): about
# 11 min and 6 GB (one search at a time).  Names: tN tasks, dN depth, bN
# tasks a call (BATCH), kN deaths, pN producers, rN reapers, gN SPACE_NEED;
# w, c, a: WORKER_, REAPER_, PRODUCER_AWAITS; h HINT0, t PROD_TIMEOUTS,
# f PROD_FUTEX, e ERR, s STOP_ANY + FAIL_ANY.
MODEL_MEMLIM := 2048
ifeq ($(MODEL_BIG),1)
MODEL_MEMLIM := 8192
MODEL_CFGS += t2d1k1w:-DNTASKS=2+-DDEPTH=1+-DMAXDEATH=1+-DWORKER_AWAITS \
	t3d1b3w:-DNTASKS=3+-DDEPTH=1+-DBATCH=3+-DMAXDEATH=0+-DWORKER_AWAITS \
	t2d1r2w:-DNTASKS=2+-DDEPTH=1+-DMAXDEATH=0+-DNREAP=2+-DWORKER_AWAITS \
	t3d1b2p2wc:-DNTASKS=3+-DDEPTH=1+-DBATCH=2+-DMAXDEATH=0+-DNPROD=2+-DWORKER_AWAITS+-DREAPER_AWAITS
endif
# name:flags (mutants that must fail)
MODEL_MUTS := latev:-DMUT_LATEV+-DNTASKS=3+-DDEPTH=2+-DMAXDEATH=0+-DREVERSE \
	nogen:-DMUT_NOGEN+-DNTASKS=2+-DMAXDEATH=0 \
	nofence:-DMUT_NOFENCE+-DNTASKS=2+-DMAXDEATH=0 \
	nosignal:-DMUT_NOSIGNAL+-DNTASKS=2+-DMAXDEATH=0 \
	order:-DMUT_ORDER+-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=1 \
	norec:-DMUT_NOREC+-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=1 \
	noseq:-DMUT_NOSEQ+-DNTASKS=2+-DDEPTH=1+-DMAXDEATH=1+-DWORKER_AWAITS+-DREVERSE \
	puborder:-DMUT_PUBORDER+-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=0 \
	nopoke:-DMUT_NOPOKE+-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=0 \
	drainfirst:-DMUT_DRAINFIRST+-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=0 \
	weight1:-DMUT_WEIGHT1+-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=0+-DNREAP=2 \
	pweight1:-DMUT_PWEIGHT1+-DNTASKS=3+-DDEPTH=1+-DMAXDEATH=0+-DNPROD=2+-DWORKER_AWAITS+-DREAPER_AWAITS+-DREVERSE \
	earlyrelease:-DMUT_EARLYRELEASE+-DNTASKS=3+-DDEPTH=1+-DMAXDEATH=0+-DNPROD=2+-DWORKER_AWAITS+-DREAPER_AWAITS+-DREVERSE \
	lockfreewithdraw:-DMUT_LOCKFREEWITHDRAW+-DNTASKS=3+-DDEPTH=1+-DBATCH=3+-DMAXDEATH=0+-DWORKER_AWAITS+-DREAPER_AWAITS \
	lockfreepend:-DMUT_LOCKFREEPEND+-DNTASKS=3+-DDEPTH=1+-DBATCH=3+-DMAXDEATH=0+-DWORKER_AWAITS+-DREAPER_AWAITS \
	nowithdraw:-DMUT_NOWITHDRAW+-DNTASKS=3+-DDEPTH=1+-DBATCH=3+-DMAXDEATH=0+-DWORKER_AWAITS+-DREAPER_AWAITS \
	donebeforewithdraw:-DMUT_DONEBEFOREWITHDRAW+-DNTASKS=3+-DDEPTH=1+-DBATCH=3+-DMAXDEATH=0+-DWORKER_AWAITS+-DREAPER_AWAITS \
	hinttrust:-DMUT_HINTTRUST+-DNTASKS=3+-DDEPTH=1+-DMAXDEATH=0+-DNPROD=2+-DWORKER_AWAITS+-DREAPER_AWAITS+-DREVERSE \
	noerrset:-DMUT_NOERRSET+-DNTASKS=5+-DDEPTH=2+-DSPACE_NEED=2+-DBATCH=5+-DMAXDEATH=0+-DWORKER_AWAITS+-DREAPER_AWAITS+-DERR \
	nofinwake:-DMUT_NOFINWAKE+-DNTASKS=5+-DDEPTH=2+-DSPACE_NEED=2+-DBATCH=5+-DMAXDEATH=0+-DWORKER_AWAITS+-DREAPER_AWAITS+-DERR \
	nofincheck:-DMUT_NOFINCHECK+-DNTASKS=4+-DDEPTH=1+-DBATCH=2+-DMAXDEATH=0+-DNPROD=2+-DWORKER_AWAITS+-DREAPER_AWAITS+-DPRODUCER_AWAITS+-DERR \
	skipbad:-DMUT_SKIPBAD+-DNTASKS=5+-DDEPTH=2+-DSPACE_NEED=2+-DBATCH=5+-DMAXDEATH=0+-DWORKER_AWAITS+-DREAPER_AWAITS+-DERR \
	takestopped:-DMUT_TAKESTOPPED+-DNTASKS=3+-DDEPTH=1+-DBATCH=3+-DMAXDEATH=0+-DWORKER_AWAITS+-DREAPER_AWAITS+-DSTOP_ANY+-DFAIL_ANY \
	nofailwake:-DMUT_NOFAILWAKE+-DNTASKS=2+-DDEPTH=1+-DMAXDEATH=0+-DWORKER_AWAITS+-DSTOP_ANY+-DFAIL_ANY \
	nostopreapwake:-DMUT_NOSTOPREAPWAKE+-DNTASKS=2+-DDEPTH=1+-DMAXDEATH=0+-DWORKER_AWAITS+-DSTOP_ANY+-DFAIL_ANY \
	evc-nogen:-DMUT_NOGEN+-DNW=2+-DNPUB=2+-DNSLEEP=1 \
	evc-stale:-DSHARED_WOKEN+-DMUT_STALE+-DNW=2+-DNPUB=2+-DNSLEEP=1 \
	evc-seqmoved:-DMUT_SEQMOVED+-DNW=2+-DNPUB=2+-DNSLEEP=2 \
	evc-nowatch:-DSHARED_WOKEN+-DDEATHS=1+-DMUT_NOWATCH+-DNW=2+-DNPUB=1+-DNSLEEP=1
PAN_CFLAGS := -O2 -DSAFETY -DCOLLAPSE -DMEMLIM=$(MODEL_MEMLIM)
# pans compiled at once (the searches themselves run one at a time: two
# searches at once slow each other down more than they gain)
MODEL_JOBS ?= 2

.PHONY: model
model:
	$(Q)command -v spin >/dev/null || { echo "model: spin missing (tools/install-deps proof)"; exit 1; }
	$(Q)mkdir -p $(MODEL_DIR)
	$(Q)t0=$$(date +%s); \
	build() { \
		name=$${1%%:*}; flags=$$(echo $${1#*:} | tr + ' '); d=$(MODEL_DIR)/$$name; \
		case $$name in evc-*) src=$(EVC_SRC);; *) src=$(MODEL_SRC);; esac; \
		rm -rf $$d && mkdir -p $$d && cp $$src $$d/ && \
		(cd $$d && spin -a $$flags $$(basename $$src) >spin.log && \
		 $(CC) $(PAN_CFLAGS) $$flags -o pan pan.c 2>>spin.log); \
	}; \
	n=0; for c in $(MODEL_CFGS) $(MODEL_MUTS); do \
		build $$c & n=$$((n + 1)); \
		if [ $$n -ge $(MODEL_JOBS) ]; then wait; n=0; fi; \
	done; wait; \
	ok=1; nv=0; nc=0; \
	for c in $(MODEL_CFGS) $(MODEL_MUTS); do \
		name=$${c%%:*}; flags=$$(echo $${c#*:} | tr + ' '); d=$(MODEL_DIR)/$$name; \
		if [ -x $$d/pan ]; then (cd $$d && ./pan -m200000 >pan.out 2>&1); else : >$$d/pan.out; fi; \
		errs=$$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' $$d/pan.out); \
		states=$$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' $$d/pan.out); \
		secs=$$(sed -n 's/^pan: elapsed time \([0-9.e+]*\).*/\1/p' $$d/pan.out); \
		mb=$$(sed -n 's/^ *\([0-9.]*\)[ \t]*total actual memory usage.*/\1/p' $$d/pan.out); \
		case " $(MODEL_MUTS) " in *" $$c "*) want=fail;; *) want=pass;; esac; \
		if [ ! -x $$d/pan ]; then res="BUILD FAILED (see $$d/spin.log)"; ok=0; \
		elif grep -q "MEMLIM" $$d/pan.out || { [ $$want = pass ] && grep -q "Search not completed" $$d/pan.out; }; then \
			res="INCOMPLETE (see $$d/pan.out)"; ok=0; \
		elif [ "$$want" = pass ] && [ "$$errs" = 0 ]; then res="verified"; nv=$$((nv + 1)); \
		elif [ "$$want" = fail ] && [ -n "$$errs" ] && [ "$$errs" != 0 ]; then \
			res="counterexample found, as required ($$(grep -m1 '^pan:1:' $$d/pan.out))"; nc=$$((nc + 1)); \
		else res="WRONG (errors=$$errs, wanted $$want; see $$d/pan.out)"; ok=0; fi; \
		echo "== model $$name [$$flags]: $$states states, $${secs}s, $${mb} MB: $$res"; \
	done; \
	echo "== model: $$nv configurations verified, $$nc mutants caught, $$(( $$(date +%s) - t0 )) s in all"; \
	[ $$ok = 1 ]

CHECK_EXTRA += model
