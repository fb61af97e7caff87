# The Spin model of the sleep/wake protocol (tests/model/pool.pml).
#   make model    every configuration must verify (no error), and every
#                 mutant must produce a counterexample (so the model cannot
#                 silently become vacuous).  Exhaustive search (no BITSTATE),
#                 COLLAPSE compression; a few minutes and < 2 GB on 2 cores.
MODEL_DIR  := build/model
MODEL_SRC  := tests/model/pool.pml
# name:-D flags (configurations that must verify).  The flags go to both
# spin -a (the model's macros) and the C compiler (pan's options, such as
# -DREVERSE: search order only); neither uses the other's names.
MODEL_CFGS := t2d2:-DNTASKS=2+-DDEPTH=2+-DMAXDEATH=0 \
	t1d1k1:-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=1+-DMAXATT=2 \
	t1d1k1a1:-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=1+-DMAXATT=1
# name:flags (mutants that must fail)
MODEL_MUTS := latev:-DMUT_LATEV+-DNTASKS=2+-DMAXDEATH=0 \
	nogen:-DMUT_NOGEN+-DNTASKS=2+-DMAXDEATH=0 \
	nofence:-DMUT_NOFENCE+-DNTASKS=2+-DMAXDEATH=0 \
	nosignal:-DMUT_NOSIGNAL+-DNTASKS=2+-DMAXDEATH=0 \
	order:-DMUT_ORDER+-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=1 \
	norec:-DMUT_NOREC+-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=1 \
	noseq:-DMUT_NOSEQ+-DNTASKS=2+-DDEPTH=1+-DMAXDEATH=1+-DREVERSE \
	puborder:-DMUT_PUBORDER+-DNTASKS=1+-DDEPTH=1+-DMAXDEATH=0
PAN_CFLAGS := -O2 -DSAFETY -DCOLLAPSE -DMEMLIM=2048

.PHONY: model
model:
	$(Q)command -v spin >/dev/null || { echo "model: spin missing (tools/install-deps proof)"; exit 1; }
	$(Q)mkdir -p $(MODEL_DIR)
	$(Q)ok=1; \
	for c in $(MODEL_CFGS) $(MODEL_MUTS); do \
		name=$${c%%:*}; flags=$$(echo $${c#*:} | tr + ' '); d=$(MODEL_DIR)/$$name; \
		mkdir -p $$d && cp $(MODEL_SRC) $$d/ && \
		(cd $$d && spin -a $$flags pool.pml >spin.log && \
		 $(CC) $(PAN_CFLAGS) $$flags -o pan pan.c 2>>spin.log && \
		 ./pan -m200000 >pan.out 2>&1); \
		errs=$$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' $$d/pan.out); \
		states=$$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' $$d/pan.out); \
		secs=$$(sed -n 's/^pan: elapsed time \([0-9.e+]*\).*/\1/p' $$d/pan.out); \
		case " $(MODEL_MUTS) " in *" $$c "*) want=fail;; *) want=pass;; esac; \
		if grep -q "MEMLIM" $$d/pan.out || { [ $$want = pass ] && grep -q "Search not completed" $$d/pan.out; }; then \
			res="INCOMPLETE (see $$d/pan.out)"; ok=0; \
		elif [ "$$want" = pass ] && [ "$$errs" = 0 ]; then res="verified"; \
		elif [ "$$want" = fail ] && [ -n "$$errs" ] && [ "$$errs" != 0 ]; then \
			res="counterexample found, as required ($$(grep -m1 '^pan:1:' $$d/pan.out))"; \
		else res="WRONG (errors=$$errs, wanted $$want; see $$d/pan.out)"; ok=0; fi; \
		echo "== model $$name [$$flags]: $$states states, $${secs}s: $$res"; \
	done; [ $$ok = 1 ]

CHECK_EXTRA += model
