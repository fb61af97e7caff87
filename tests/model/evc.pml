/*
 * The eventcount of lib/evc.h alone, with several wakers live at once.
 *
 * pool.pml checks the whole pool (dispatch, supervision, deaths, the
 * producer's backpressure), but with one worker at a time: a replacement
 * starts only after its predecessor died.  So it never has two workers
 * waking the consumer at once, and evc.h's rule that lets a waker skip a
 * generation "it already woke" (*last, one per waker) was argued there
 * (evc.h, "Why a waker may skip...") but checked with one waker only.  This
 * model checks that rule with NW wakers publishing work concurrently and
 * the consumer's two kinds of sleepers (lib/reap.c): the one that owns the
 * wake pipe (announced with weight 1, polls the pipe) and, with NSLEEP 2, a
 * second reaper asleep on the futex (weight 2).
 *
 * Each waker (worker.c signal_consumer) publishes one unit of work (a
 * completion: W1), then, after its fence, reads the announcement word once
 * (W2) and, when a sleeper is announced in a generation it has not woken,
 * bumps seq (W3), writes a byte to the pipe when the count is odd and calls
 * FUTEX_WAKE when it is 2 or more (evc_wake_fd).  Each sleeper takes work
 * while there is some; else it reads seq, announces itself (sleepers and a
 * new generation, S1), re-checks after its fence and sleeps: the pipe's
 * owner compares seq and polls the pipe until a byte is there, then drains
 * it (evc_sleep_fd); the futex sleeper queues itself if seq is unchanged
 * and blocks until a FUTEX_WAKE (evc_sleep).  The one that takes the last
 * unit wakes every other sleeper (the pool's stop does: pool_wake_reapers).
 * Statements interleave one at a time (sequential consistency: the code's
 * seq_cst fences between S1 and the re-check, and between W1 and W2, are
 * what make that a faithful model of those steps).
 *
 * The property: no sleeper stays asleep while work is left.  A lost
 * wake-up leaves a sleeper blocked for ever with work pending and the
 * wakers finished: an invalid end state, which the search reports (the
 * real sleepers would wake at their 5 ms look; the model has no timeouts,
 * since one could only mask a lost wake-up).
 *
 * SHARED_WOKEN (the library's rule since session 14): besides its own
 * *last, the workers share one word `woken`.  A waker that decides to wake
 * a generation first exchanges it into that word, before its bump and its
 * calls; if the word already held that generation, another waker claimed
 * that sleep and this one skips it, leaving its own *last alone (README,
 * session 13: with two workers at depth 10 the workers made 0.19 wake-up
 * calls a task for 0.12 sleeps).  Claimed before the calls, not stored after
 * them: stored after, two wakers still both woke most sleeps (0.193 calls a
 * task), since the first one's pipe write switches to the consumer on its
 * own CPU before it gets to the store.  Only sleeps that the pipe's owner
 * is counted in (an odd count) are claimed: with the consumer asleep on the
 * futex (tiny tasks), a second waker's bump made the consumer's next
 * FUTEX_WAIT return at once, and without it the consumer slept more often
 * (ring-bench's tiny 2-worker depth-10 row, every sleep claimed: 0.014
 * sleeps and 0.65 us a task, against 0.008 and 0.50 without the word).
 *
 * DEATHS (1 at most): a waker may be killed at each point where what it
 * did so far is visible: after it published a unit, before it signalled;
 * after its claim in the shared word (or its choice to wake), before its
 * bump; after its bump, before its byte; after its byte, before its
 * FUTEX_WAKE; between two units.  A claimant
 * killed before its calls leaves that sleep claimed, and the other wakers
 * skip it; what wakes the sleeper then is its watch on the workers (the
 * pipe's owner polls the io_uring whose completions are the workers'
 * deaths, supervise.c pool_consumer_sleep; without io_uring, a tick's
 * timeout).  The sleeper then starts a replacement (a fresh process: no
 * *last) for the units the dead one had not published; the unit it had
 * published stays published.  pool.pml has the rest of a death (the task
 * in hand, its retry) with one worker at a time.
 *
 * Bounds: the searches are exhaustive but small.  With two sleepers and two
 * units of work from each of two wakers (or one unit from each of three)
 * the search does not fit in 2 GB; the configurations in mk/model.mk are
 * those that do, in seconds.
 *
 * Mutants (each must produce a counterexample, or the model is vacuous):
 *   MUT_NOGEN     a sleeper announces without a new generation: a waker
 *                 that woke the previous sleep skips the next one.
 *   MUT_STALE     (SHARED_WOKEN) a waker skips when the shared word held
 *                 any generation, not the one it read.
 *   MUT_SEQMOVED  a cheaper rule that looks safe: the sleeper publishes the
 *                 seq value it sleeps on, and a waker whose bump finds seq
 *                 already past that value (another waker bumped it) makes no
 *                 wake-up call.  With two sleepers it loses one: a waker that
 *                 read only the futex sleeper bumps seq and writes no byte,
 *                 and the pipe's owner, already polling, is left asleep.
 *   MUT_NOWATCH   (DEATHS) the sleeper's poll does not return on a death: a
 *                 waker killed after publishing, before its calls (or, with
 *                 SHARED_WOKEN, after its claim, the others skipping that
 *                 sleep) leaves the sleeper asleep with work published.
 */

#ifndef NW
#define NW 2            /* wakers live at once */
#endif
#ifndef NPUB
#define NPUB 2          /* units of work each publishes */
#endif
#ifndef NSLEEP
#define NSLEEP 1        /* 1: the pipe's owner; 2: and a futex sleeper */
#endif
#define TOTAL (NW * NPUB)
#ifndef DEATHS
#define DEATHS 0        /* wakers killed, at most */
#endif
#define NONE 255        /* EVC_NONE: no generation equals it */
#define PIPECAP 2       /* bytes the pipe holds (a full pipe drops a poke) */

byte seq;               /* cq_seq.seq: wakers bump it; it may wrap */
byte sl;                /* cq_waiters.ann: sleepers announced (weights) */
byte gn;                /* cq_waiters.ann: generation */
byte ann_v;             /* MUT_SEQMOVED: the seq value the last announcer sleeps on */
byte pending;           /* work published, not taken */
byte taken;             /* work taken */
byte pipe;              /* bytes in the wake pipe */
bit fq;                 /* the futex sleeper is queued in FUTEX_WAIT */
byte shared = NONE;     /* SHARED_WOKEN: a generation some waker woke */
byte deaths;            /* wakers killed so far */
byte dead_left;         /* units the killed waker had not published */
bit dead_unseen;        /* its death is pending in the sleeper's watch */

#if DEATHS > 0
/* The waker may be killed here, with n units not yet published. */
#define MAYDIE(n)                                                        \
	if                                                                \
	:: atomic { mortal && deaths < DEATHS ->                          \
			deaths++; dead_left = n; dead_unseen = 1 };       \
		goto dead                                                 \
	:: true -> skip                                                   \
	fi
#else
#define MAYDIE(n)       /* nothing: not even a step */
#endif

#ifdef MUT_NOWATCH
#define WATCH false                                                 /* MUTANT */
#else
#define WATCH (dead_unseen != 0)
#endif

/* The sleeper's watch saw the death: supervision starts a replacement. */
#define REAP_DEATH atomic { dead_unseen -> dead_unseen = 0; run Waker(dead_left, 0) }

#define POKE atomic { if :: pipe < PIPECAP -> pipe++ :: else -> skip fi }

/* The sleeper that takes the last unit: every other sleeper is woken
 * (bump, FUTEX_WAKE of all, a byte), as the pool's stop does. */
#define TAKE                                                             \
	atomic { pending > 0 -> pending--; taken++;                      \
		if                                                        \
		:: taken == TOTAL -> seq++; fq = 0; POKE                  \
		:: else -> skip                                           \
		fi }

#ifdef MUT_SEQMOVED
#define PUBLISH_V ann_v = v
#else
#define PUBLISH_V skip
#endif
#ifdef MUT_NOGEN
#define ANNOUNCE(w) atomic { sl = sl + w; PUBLISH_V }               /* MUTANT */
#else
#define ANNOUNCE(w) atomic { sl = sl + w; gn++; assert(gn != NONE); PUBLISH_V }
#endif

/* SHARED_WOKEN: the exchange, then skip if another waker claimed it. */
#if defined(SHARED_WOKEN) && defined(MUT_STALE)
#define CLAIMED_BY_OTHER (old != NONE)                              /* MUTANT */
#else
#define CLAIMED_BY_OTHER (old == a_gn)
#endif
#ifdef SHARED_WOKEN
/* Only a sleep the pipe's owner is counted in (an odd count): see the top. */
#define CLAIM                                                            \
	if                                                                \
	:: a_sl & 1 ->                                                    \
		atomic { old = shared; shared = a_gn };                   \
		if                                                        \
		:: CLAIMED_BY_OTHER -> goto skipped                       \
		:: else -> skip                                           \
		fi                                                        \
	:: else -> skip                                                   \
	fi
#else
#define CLAIM skip
#endif

proctype Waker(byte npub; bit mortal)
{
	byte k, a_sl, a_gn, a_v, old, last = NONE;

	/* Killed points: published, not signalled; claimed, no calls;
	 * bumped, no byte; a byte, no FUTEX_WAKE; done with a unit. */
	for (k : 1 .. npub) {
		pending++;                                            /* W1 */
		MAYDIE(npub - k);
		atomic { a_sl = sl; a_gn = gn; a_v = ann_v };         /* W2 (a_v: MUT_SEQMOVED) */
		if
		:: a_sl > 0 && a_gn != last ->
			CLAIM;
			MAYDIE(npub - k);
			last = a_gn;
			old = seq;
			seq++;                                        /* W3 */
			MAYDIE(npub - k);
#ifdef MUT_SEQMOVED
			if
			:: old != a_v -> goto skipped                 /* MUTANT */
			:: else -> skip
			fi;
#endif
			if :: a_sl & 1 -> POKE :: else -> skip fi;
			if
			:: a_sl >= 2 -> MAYDIE(npub - k); fq = 0
			:: else -> skip
			fi
		:: else -> skip
		fi;
skipped:	a_sl = 0; a_gn = 0; a_v = 0; old = 0
#if DEATHS > 0
		;
		if :: k < npub -> MAYDIE(npub - k) :: else -> skip fi
#endif
	}
#if DEATHS > 0
	;
	goto done;
dead:	a_sl = 0; a_gn = 0; a_v = 0; old = 0;
done:	k = 0; last = 0   /* a finished or killed waker: one state */
#endif
}

proctype PipeSleeper()
{
	byte v;

	do
	:: taken == TOTAL -> break
	:: TAKE
	:: REAP_DEATH
	:: atomic { pending == 0 && taken < TOTAL -> v = seq };   /* S0 */
		ANNOUNCE(1);                                          /* S1 */
		if
		:: pending > 0 || taken == TOTAL -> skip              /* re-check */
		:: else ->
			/* evc_sleep_fd: compare, then poll until a byte or
			 * (the io_uring) a death */
			if
			:: atomic { seq == v -> (pipe > 0 || WATCH) }
			:: seq != v -> skip
			fi;
			pipe = 0                                      /* sys_drain */
		fi;
		atomic { assert(sl >= 1); sl = sl - 1; v = 0 }        /* evc_done */
#if DEATHS > 0
		/* A death that woke us is reaped before we sleep again. */
		if
		:: REAP_DEATH
		:: else -> skip
		fi
#endif
	od
}

proctype FutexSleeper()
{
	byte v;

	do
	:: taken == TOTAL -> break
	:: TAKE
	:: atomic { pending == 0 && taken < TOTAL -> v = seq };
		ANNOUNCE(2);
		if
		:: pending > 0 || taken == TOTAL -> skip
		:: else ->
			/* FUTEX_WAIT: queued if seq is still v, then blocked
			 * until a FUTEX_WAKE dequeues it */
			atomic { if :: seq == v -> fq = 1 :: else -> skip fi };
			(fq == 0)
		fi;
		atomic { assert(sl >= 2); sl = sl - 2; v = 0 }
	od
}

init
{
	byte i;

	atomic {
		/* Only the first may be killed: the wakers are alike, so a
		 * run where another one is killed is this one renamed. */
		for (i : 1 .. NW) {
			run Waker(NPUB, i == 1)
		}
		run PipeSleeper();
#if NSLEEP > 1
		run FutexSleeper()
#endif
	}
}
