/*
 * libarena's sleep/wake protocol (lib/evc.h, lib/worker.c, lib/submit.c,
 * lib/reap.c, lib/supervise.c) as a Promela model for Spin, with the
 * parent-side task record that death handling relies on.  See README.md in
 * this directory for what is proved and what is left out.
 *
 * Processes: one producer (arena_pool_submit + arena_pool_stop), one worker
 * (worker_run; restarted by the consumer after a death), one consumer
 * (arena_pool_reap + release + pool_handle_exit), and a killer that may
 * SIGKILL the worker at any step (MAXDEATH times).
 *
 * No timeouts anywhere: the worker's 250 ms parent check, the reaper's
 * look and the producer's deadline are left out, so a lost wake-up is a
 * state where a side sleeps and nothing will ever wake it: Spin reports it
 * as an invalid end state (every process blocked, not at its end).
 *
 * Memory model: Spin's interleaving is sequentially consistent.  The code's
 * seq_cst fences give exactly that for the Dekker pairs that matter (S1 -> S2
 * and W1 -> W2 in evc.h); the mutant MUT_NOFENCE shows what TSO does without
 * the sleeper's fence (its loads pass its store).
 *
 * The record (submit.c push_to, reap.c pool_harvest/convert, supervise.c):
 * the producer writes each task into its private record rec[pos] and into
 * the SQ slot, then publishes pub_tail, then sq_tail.  A completion is
 * accepted only when it names the record's oldest entry (rec_head, below
 * pub_tail); anything else fails the pool with -EBADMSG, which here is an
 * assertion: an honest worker must never be judged corrupt.  What is
 * delivered comes from the record.  After a death: harvest; the oldest
 * record entry was in hand iff inhand_valid and inhand's seq is its seq; it
 * is charged an attempt (after MAXATT it completes with an error and leaves
 * the record); the replacement's SQ is rewritten from the record
 * [rec_head, sq_tail) and its sq_head is rec_head, so the task in hand runs
 * first.  One worker and tasks submitted in order: a task's seq and index
 * are the same number here (its id).
 *
 * Ghost `held`: the task the worker holds, from inhand_valid = 1 to the
 * publication of its completion (cq_tail).  After a death the parent must
 * charge exactly that task: one that killed its worker and is not charged
 * would kill replacements for ever; one charged that did not run would fail
 * (at max_attempts) without cause.
 *
 * Mutants (each one line, selected with -D; `make model` requires Spin to
 * find a counterexample for each):
 *   MUT_NOGEN     the sleeper announces without a new generation (evc_prepare
 *                 adds EVC_SLEEPER only): a waker that woke the previous
 *                 announcement skips this one.
 *   MUT_LATEV     the value to sleep on is read after the announcement
 *                 (libarena before this model: evc_prepare returned the
 *                 seq read after its fence).  A waker that bumps seq between
 *                 the announcement and that read counts the generation as
 *                 woken, but the sleeper sleeps on the bumped value: the next
 *                 wake for new work is skipped.  A lost wake-up.
 *   MUT_NOFENCE   no fence between the sleeper's announcement and its
 *                 re-check: the re-check's loads are done before the store
 *                 is visible (what x86 store buffering allows).
 *   MUT_NOSIGNAL  the worker goes to sleep without first waking the consumer
 *                 for completions it posted but did not signal yet.
 *   MUT_ORDER     the worker clears inhand_valid before it publishes the
 *                 completion (cq_tail): a death in between leaves the task
 *                 uncharged (the record still runs it again).
 *   MUT_NOREC     the replacement starts at the dead worker's sq_head (the
 *                 channel's word) instead of the record's rec_head: the task
 *                 in hand is never run again.
 *   MUT_NOSEQ     task_in_hand trusts inhand_valid alone, without comparing
 *                 inhand's seq with the record's oldest: a death after
 *                 cq_tail, before inhand_valid = 0, charges the next task,
 *                 which never ran.
 *   MUT_PUBORDER  pool_publish_locked publishes sq_tail before pub_tail: the
 *                 reaper can see a completion for a task beyond its pub_tail
 *                 and fails the pool (an honest worker judged corrupt).
 */

#ifndef NTASKS
#define NTASKS 3
#endif
#ifndef DEPTH
#define DEPTH 2          /* power of two: SQ and CQ size, tasks in flight */
#endif
#ifndef RCAP
#define RCAP 1           /* results the worker's area holds */
#endif
#ifndef MAXDEATH
#define MAXDEATH 1
#endif
#ifndef MAXATT
#define MAXATT 2         /* max_attempts: deaths a task may cause */
#endif
#define NONE 255         /* EVC_NONE: no generation equals it; no task */
#define SPACE_NEED 1     /* depth < 8 */

/* ---- producer -> worker (channel: w->prod, SQ) ---- */
byte sq[DEPTH];          /* SQE seq (= task id) */
byte sq_tail;            /* published tail (= wp->sq_tail under prod_lock) */
byte wake_seq;           /* the worker's futex word (prod.wake_seq) */
bit stop;                /* ctl.stop (drain) */

/* ---- worker -> everyone (channel: w->hot, w->slow) ---- */
byte sq_head;
byte cq[DEPTH];          /* CQE seq */
byte cq_tail;
bit inhand_valid;
byte inhand_id;          /* hot.inhand.seq */
byte wake_sl, wake_gn;   /* slow.wake_ann: sleepers, generation */
byte space_sl, space_gn; /* slow.space_ann */
bit w_sleeping;          /* rec.state == SLEEPING */

/* ---- consumer -> worker (w->cons) ---- */
byte cq_head;            /* cons.cq_head (= pw->cq_head) */
byte res_rel;            /* cons.res_head, in results */
byte res_start;          /* cons.res_start */

/* ---- the reapers' eventcount (g->cq_seq, g->cq_waiters; consumer-owned) ---- */
byte cq_seq;
byte cq_sl, cq_gn;

/* ---- parent-private ---- */
byte rec[DEPTH];         /* wp->recs[pos]: the task (seq = index = id) */
byte rec_att[DEPTH];     /* recs[pos].attempts */
byte pub_tail;           /* wp->pub_tail */
byte rec_head;           /* pw->rec_head: oldest task in flight on the worker */
byte inflight;           /* p->inflight */
byte space_seq;          /* p->space_seq */
byte ps_sl, ps_gn;       /* p->space_ann (producers) */
bit p_stopped;             /* p->p_stopped */
byte prod_last = NONE;   /* wp[0].wake_gen: the producer's *last */
byte cons_space_last = NONE; /* w[0].space_gen: the consumer's *last (release) */
byte cons_prod_last = NONE;  /* p->space_gen: the consumer's *last (producer) */
bit prod_lock;
byte delivered[NTASKS];
byte ndelivered;

/* ---- life and death ---- */
bit alive, kill, dead;
byte deaths;
byte held = NONE;        /* ghost: the task the worker holds (see above) */
#define lock(l)   atomic { l == 0 -> l = 1 }
#define unlock(l) l = 0

/* evc_prepare: announce (S1), fence, v = seq (S2). */
#ifdef MUT_NOGEN
#define ANNOUNCE(sl, gn)  sl++                       /* MUTANT: no new generation */
#else
#define ANNOUNCE(sl, gn)  atomic { sl++; gn++ }
#endif
#define DONE(sl)          assert(sl > 0); sl--       /* counts never borrow */

/* evc_wake(_fenced): after the waker's fence. */
#define WAKE(sl, gn, last, seqw)                                         \
	atomic { a_sl = sl; a_gn = gn };     /* one load of ann */        \
	if                                                                \
	:: a_sl > 0 && a_gn != last ->                                    \
		atomic { last = a_gn; a_sl = 0; a_gn = 0; seqw++ }        \
	:: else -> a_sl = 0; a_gn = 0                                     \
	fi

/* evc_prepare + the caller's re-check: v is the futex word's value read
 * BEFORE the announcement (so a wake that bumps it after seeing the
 * announcement makes FUTEX_WAIT return at once), then announce (S1), fence,
 * re-check the condition.  Spurious wake-ups are not modelled: a timeout
 * could only mask a lost wake-up. */
#if defined(MUT_NOFENCE)
#define PREPARE(sl, gn, seqw, v, rdy, readyexpr) \
	v = seqw; rdy = (readyexpr); ANNOUNCE(sl, gn)   /* MUTANT: loads pass the store */
#elif defined(MUT_LATEV)
#define PREPARE(sl, gn, seqw, v, rdy, readyexpr) \
	ANNOUNCE(sl, gn); v = seqw; rdy = (readyexpr)   /* MUTANT: v read after S1 */
#else
#define PREPARE(sl, gn, seqw, v, rdy, readyexpr) \
	v = seqw; ANNOUNCE(sl, gn); rdy = (readyexpr)
#endif

#ifdef MUT_NOSIGNAL
#define SIGNAL_BEFORE_SLEEP skip                        /* MUTANT */
#else
#define SIGNAL_BEFORE_SLEEP if :: unsig > 0 -> SIGNAL_CONSUMER :: else -> skip fi
#endif

/* worker.c signal_consumer: evc_wake(cq_waiters.ann, &cq_gen, cq_seq). */
#define SIGNAL_CONSUMER unsig = 0; WAKE(cq_sl, cq_gn, cq_last, cq_seq)

/* worker.c idle_wait */
#define IDLE_WAIT(sl, gn, readyexpr)                                      \
	SIGNAL_BEFORE_SLEEP;                                              \
	PREPARE(sl, gn, wake_seq, v, rdy, readyexpr);                     \
	if                                                                \
	:: rdy -> rdy = 0; v = 0; DONE(sl)                                \
	:: else ->                                                        \
		w_sleeping = 1;                                           \
		(wake_seq != v);          /* FUTEX_WAIT(&wake_seq, v) */   \
		v = 0;                                                    \
		DONE(sl);                                                 \
		w_sleeping = 0                                            \
	fi

#define TASKS_READY (sq_tail != head || stop)
#define SPACE_READY (res_rel != rel_seen)

#ifdef MUT_ORDER
#define CLEAR_BEFORE inhand_valid = 0                   /* MUTANT */
#define CLEAR_AFTER unsig++
#else
#define CLEAR_BEFORE skip
#define CLEAR_AFTER atomic { inhand_valid = 0; unsig++ }
#endif

/* worker.c run_one + run_task + post for task `id` (SQ position head) */
#define RUN_ONE(id)                                                       \
	inhand_id = id;                                                   \
	atomic { inhand_valid = 1; held = id };                           \
	head++; sq_head = head;                                           \
	/* result space: wait while our area is full (more_room) */      \
	do                                                                \
	:: rel_seen = res_rel;                                            \
		if                                                        \
		:: ru - rel_seen < RCAP -> break                          \
		:: else -> IDLE_WAIT(space_sl, space_gn, SPACE_READY)     \
		fi                                                        \
	od;                                                               \
	atomic {                          /* result bytes, then the CQE */ \
		rel_seen = 0; ru++;                                       \
		assert(ctail - cq_head < DEPTH); /* CQ never overflows */ \
		cq[ctail % DEPTH] = id                                    \
	};                                                                \
	CLEAR_BEFORE;                                                     \
	atomic { ctail++; cq_tail = ctail; held = NONE } /* release */    \
	CLEAR_AFTER

proctype Worker()
{
	byte head, ctail, ru, unsig, tail, v, id, rel_seen, a_sl, a_gn, cq_last = NONE;
	bit rdy, st;

	{
		/* start from the state the parent left (prepare_restart) */
		head = sq_head; ctail = cq_tail; ru = res_start;
		do
		:: st = stop; tail = sq_tail;
			assert(tail - head <= DEPTH);
			if
			:: st && tail == head -> break
			:: !st && tail == head ->
				/* spin_for_tasks: a spin only re-reads sq_tail,
				 * which the loop does anyway; then sleep. */
				IDLE_WAIT(wake_sl, wake_gn, TASKS_READY)
			:: else ->
				do
				:: head != tail ->
					id = sq[head % DEPTH];
					RUN_ONE(id);
					/* signal_due: always when the queue ran dry,
					 * maybe earlier (batch, delay) */
					if
					:: tail == head -> SIGNAL_CONSUMER
					:: tail != head -> SIGNAL_CONSUMER
					:: tail != head -> skip
					fi
				:: else -> break
				od;
				id = 0
			fi
		od;
		if :: unsig > 0 -> SIGNAL_CONSUMER :: else -> skip fi;
		alive = 0
	} unless {
		kill -> atomic { kill = 0; alive = 0; dead = 1 }
	}
}

active proctype Killer()
{
end:	do
	:: deaths < MAXDEATH && alive && !kill -> kill = 1; deaths++
	:: deaths == MAXDEATH -> break
	:: ndelivered == NTASKS -> break
	od
}

/* submit.c pool_publish_locked: pub_tail (release), then sq_tail (release) */
#ifdef MUT_PUBORDER
#define PUBLISH sq_tail++; pub_tail++                   /* MUTANT */
#else
#define PUBLISH pub_tail++; sq_tail++
#endif

active proctype Producer()
{
	byte id, v, a_sl, a_gn;
	bit rdy;

	for (id : 0 .. NTASKS - 1) {
		/* submit.c wait_space */
		do
		:: inflight < DEPTH -> break
		:: else ->
			PREPARE(ps_sl, ps_gn, space_seq, v, rdy, DEPTH - inflight >= SPACE_NEED);
			if
			:: rdy -> rdy = 0; v = 0; DONE(ps_sl)
			:: else -> (space_seq != v); v = 0; DONE(ps_sl)
			fi
		od;
		lock(prod_lock);
		inflight++;
		d_step {                           /* push_to: record, then SQ slot */
			assert(sq_tail - rec_head < DEPTH); /* a record slot is free */
			rec[sq_tail % DEPTH] = id; rec_att[sq_tail % DEPTH] = 0;
			sq[sq_tail % DEPTH] = id
		};
		PUBLISH;                           /* W1; fence */
		WAKE(wake_sl, wake_gn, prod_last, wake_seq);
		unlock(prod_lock)
	}
	/* arena_pool_stop (drain): stop, then wake every worker whether or
	 * not it announced itself. */
	lock(prod_lock);
	p_stopped = 1;
	unlock(prod_lock);
	stop = 1;
	wake_seq++
}

/* Delivery of task `id`: exactly once. */
#define DELIVER(id) assert(delivered[id] == 0); delivered[id] = 1; got++

/* reap.c pool_harvest for the one worker: CQEs up to cq_tail (acquire),
 * then pub_tail (acquire).  Each must name the record's oldest entry (below
 * pub_tail); delivered from the record. */
#define HARVEST                                                           \
	t = cq_tail;                                                      \
	atomic {                                                          \
	assert(t - cq_head <= DEPTH);                                     \
	do                                                                \
	:: cq_head != t ->                                                \
		/* convert(): anything else is pool_fail(-EBADMSG) */     \
		assert(rec_head != pub_tail &&          /* not corrupt */ \
		       cq[cq_head % DEPTH] == rec[rec_head % DEPTH]);     \
		id = rec[rec_head % DEPTH];                               \
		DELIVER(id);                                              \
		res_end++; rel++;                                         \
		rec_head++;                                               \
		cq_head++                                                 \
	:: else -> break                                                  \
	od;                                                               \
	t = 0; id = 0                                                     \
	}

/* supervise.c task_in_hand: the oldest record entry, if the worker had
 * taken it (inhand_valid and inhand's seq is its seq). */
#ifdef MUT_NOSEQ
#define IN_HAND (rec_head != sq_tail && inhand_valid)   /* MUTANT */
#else
#define IN_HAND (rec_head != sq_tail && inhand_valid && \
		 inhand_id == rec[rec_head % DEPTH])
#endif

#ifdef MUT_NOREC
#define RESTART_HEAD skip                /* MUTANT: the dead worker's sq_head */
#else
#define RESTART_HEAD sq_head = rec_head
#endif

active proctype Consumer()
{
	byte t, id, v, got, rel, res_end, k, a_sl, a_gn;
	bit rdy, inh;

	alive = 1;
	run Worker();
	do
	:: ndelivered == NTASKS -> break
	:: else ->
		got = 0;
		HARVEST;
		/* pool_supervise: a death noticed (pidfd in the io_uring) */
		if
		:: dead ->
			HARVEST;                   /* pool_handle_exit */
			lock(prod_lock);
			atomic {
				inh = IN_HAND;
				/* the dead worker's task is charged, no other */
				assert(inh == (held != NONE));
				assert(!inh || held == rec[rec_head % DEPTH])
			};
			if
			:: inh ->                  /* charge_in_hand */
				rec_att[rec_head % DEPTH]++;
				if
				:: rec_att[rec_head % DEPTH] >= MAXATT ->
					/* completes with an error; out of the record */
					atomic { id = rec[rec_head % DEPTH]; DELIVER(id); id = 0 };
					rec_head++
				:: else -> skip            /* runs again */
				fi;
				inh = 0
			:: else -> skip
			fi;
			if
			:: stop && rec_head == sq_tail ->
				/* during a stop, nothing in flight: not replaced */
				atomic { held = NONE; dead = 0 }
			:: else ->
				/* prepare_restart: the replacement starts from our
				 * record, the task in hand first */
				d_step {
					k = rec_head;
					do
					:: k != sq_tail -> sq[k % DEPTH] = rec[k % DEPTH]; k++
					:: else -> break
					od;
					k = 0;
					RESTART_HEAD;
					cq_tail = cq_head;
					inhand_valid = 0; held = NONE;
					wake_sl = 0; space_sl = 0;
					w_sleeping = 0;
					prod_last = NONE; cons_space_last = NONE;
					res_start = res_end;
					dead = 0; alive = 1
				}
				run Worker()
			fi;
			unlock(prod_lock)
		:: else -> skip
		fi;
		/* deliver + release (the application releases at once) */
		if
		:: got > 0 ->
			atomic {
				assert(inflight >= got);  /* never borrows */
				inflight = inflight - got;
				ndelivered = ndelivered + got
			};
			WAKE(ps_sl, ps_gn, cons_prod_last, space_seq);
			atomic {                          /* advance_head */
				res_rel = res_rel + rel;
				assert(res_rel <= res_end);
				got = 0; rel = 0
			};
			WAKE(space_sl, space_gn, cons_space_last, wake_seq)
		:: else ->
			/* sleep: evc_prepare_owned, re-check, futex (io_uring:
			 * the futex or a death, whichever first) */
			PREPARE(cq_sl, cq_gn, cq_seq, v, rdy, cq_tail != cq_head || dead);
			if
			:: rdy -> rdy = 0; v = 0; DONE(cq_sl)
			:: else -> (cq_seq != v || dead); v = 0; DONE(cq_sl)
			fi
		fi
	od;
	/* every task delivered exactly once; counts back to rest; the record
	 * empty */
	assert(inflight == 0);
	assert(rec_head == sq_tail && pub_tail == sq_tail);
	assert(cq_sl == 0 && ps_sl == 0)
}

/* counts never borrow or overflow: the sleeper counts are 0 or 1 (one
 * sleeper per word), generations far from wrapping. */
#define BOUNDED (wake_sl <= 1 && space_sl <= 1 && ps_sl <= 1 && cq_sl <= 1 && \
		 wake_gn < 250 && cq_gn < 250)
active proctype Invariants()
{
end:	do
	:: atomic { !BOUNDED -> assert(BOUNDED) }
	od
}
