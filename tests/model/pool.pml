/*
 * libarena's sleep/wake protocol (lib/evc.h, lib/worker.c, lib/submit.c,
 * lib/reap.c, lib/supervise.c) as a Promela model for Spin, with the
 * parent-side task record that death handling relies on.  See README.md in
 * this directory for what is proved and what is left out.
 *
 * Processes: NPROD producers (arena_pool_submit: submit_batch in calls of
 * up to BATCH tasks, each call again with the rest; the last one to finish
 * calls arena_pool_stop), one worker (worker_run; restarted by a reaper
 * after a death), NREAP reapers (arena_pool_reap + release +
 * pool_handle_exit), and a killer that may SIGKILL the worker at any step
 * (MAXDEATH times).
 *
 * No timeouts anywhere: the worker's 250 ms parent check, the reaper's
 * look and tick and the producer's deadline are left out, so a lost wake-up
 * is a state where a side sleeps and nothing will ever wake it: Spin reports
 * it as an invalid end state (every process blocked, not at its end).
 *
 * Memory model: Spin's interleaving is sequentially consistent.  The code's
 * seq_cst fences give exactly that for the Dekker pairs that matter (S1 -> S2
 * and W1 -> W2 in evc.h); the mutant MUT_NOFENCE shows what TSO does without
 * the sleeper's fence (its loads pass its store).
 *
 * Three ways to sleep, as in the code:
 *  - the worker sleeps in FUTEX_WAIT on prod.wake_seq; its wakers always
 *    call FUTEX_WAKE after the bump, so "blocked until wake_seq != v" is
 *    that futex exactly;
 *  - the reaper that owns the wake pipe (uring_busy, under cons_lock) and
 *    the producer that owns the producers' pipe (space_pipe_busy) announce
 *    with weight 1 and sleep in evc_sleep_fd: read seq; if it is v, poll the
 *    pipe (level-triggered: it returns while any byte is in it; the owner
 *    reaper's poll also returns on a death, the pidfd in its io_uring);
 *    then drain the pipe.  A pipe is a count of bytes pending, at most
 *    PIPECAP; a write to a full pipe is dropped (EAGAIN).  Only "empty or
 *    not" is ever read and a drain empties it, so PIPECAP 1 loses nothing;
 *    a larger cap only adds states;
 *  - the other reapers and producers announce with weight 2 and sleep in
 *    FUTEX_WAIT on the same seq.  Here FUTEX_WAKE is modelled apart from the
 *    bump (a queued bit, cleared by FUTEX_WAKE), because evc_wake_fd calls it
 *    only when the count says a futex sleeper is there.
 * The wakers of those two words decide as evc_wake_fd: after the bump (W3),
 * an odd count writes a byte, a count of 2 or more calls FUTEX_WAKE; each
 * a step of its own (the worker may die between them).
 *
 * Deaths reach the reapers through the io_uring: a dead worker's pidfd
 * completion stays in the ring until a reaper reads it, which only happens
 * while no reaper sleeps in the ring (pool_supervise: uring_busy 0).  So the
 * ring's sleeper wakes on it (`dead` in its poll) and a futex sleeper does
 * not; nobody handles the death while the ring is owned.
 *
 * End labels' note: a reaper asleep on the futex (not the pipe's owner)
 * when every task has been delivered is a valid end (`end_futex`).  The
 * worker may die after its byte and before its FUTEX_WAKE: the pipe's owner
 * wakes (the byte, the death) and takes the completion; the futex sleeper
 * sleeps on with nothing left to reap, until the stop's final
 * pool_wake_reapers (not modelled) or its tick.  A reaper asleep on the pipe
 * at the end, or anyone asleep while a task is undelivered, is still an
 * invalid end state: while a task is undelivered some reaper (the ring's
 * owner or one waiting for cons_lock) is not at an end label.
 *
 * WORKER_AWAITS / REAPER_AWAITS / PRODUCER_AWAITS (configuration choices,
 * not mutants): that side's own sleep becomes "blocked until its condition
 * holds", a sleep that never loses a wake-up and wakes at any time after
 * the condition holds, as the real sleep does when it loses nothing (a slow
 * sleeper can still be before its re-check).  Used where the full product
 * is too large; the configurations without them check that side's sleep.
 * PROD_TIMEOUTS (with PRODUCER_AWAITS): the producer's deadline may pass at
 * any moment (it then withdraws its batch and returns what was taken, or
 * submits again).  PROD_FUTEX: tasks are short, every producer sleeps on
 * the futex with weight 2.  HINT0: the reapers' hint pend_offered always
 * reads 0 (a relaxed load may): reapers never take, producers still offer.
 *
 * The pending batch (submit.c struct pending, offer, withdraw, wait_space,
 * pool_take_pending; reap.c deliver): a producer that must wait for room
 * offers the rest of its call's batch (pend = producer, pd_n, pd_done),
 * under prod_lock, before its announcement, and withdraws it (under
 * prod_lock) when it leaves wait_space; then it returns pd_done if reapers
 * took entries, else takes room itself.  A reaper that frees room reads the
 * hint pend_offered (relaxed, no fence: any value it ever had); on 1 it
 * calls pool_take_pending: under prod_lock, take min(room, n - done) entries
 * of the offered batch (take_locked: counted in flight, pushed, published,
 * the worker's wake check), done += taken, and wake the producers only if
 * the batch is finished or room is left (1 when nothing is offered).
 * Checked: the reaper touches the batch only while it is offered (pend ==
 * rp, asserted at each access: its producer has not withdrawn, so has not
 * returned); the count a call returns is what was taken for it (ghost
 * taken_for); every task is pushed once (never beyond NTASKS) and
 * delivered once.
 *
 * ERR: one entry of producer 0's share cannot be taken, at a position and
 * of a kind chosen at the start (BADPOS, BADKIND fix them): batch_get
 * fails (the call that starts at it returns the error at once; a take
 * that reaches it takes the valid prefix before it) or its dispatch fails
 * (counted, the prefix dispatched, the rest given back with take_locked's
 * evc_wake_fd, no gen).  A reaper's take that stops short sets pd.err; the
 * producer's re-check (offered && pending_failed) ends its wait; it
 * returns the count taken, or the error when none (the caller then skips
 * the entry and submits the rest).  Checked: producer 0's entries are
 * taken in order and never the bad one (ghost next0); a count returned
 * with err set stops just before the bad entry; the error is returned only
 * for the call's first entry; the promptness check (below) also holds a
 * delivery back while a batch the reapers stopped taking from is offered.
 * With SPACE_NEED 1 and one producer err is redundant (a take that stops
 * short leaves room, and the room wakes and satisfies the producer); it
 * matters with SPACE_NEED > 1 (the C's depth / 4 from depth 8; here 2 at
 * depth 2: the same code with a gap) or a second producer that takes the
 * room left.
 *
 * STOP_ANY: arena_pool_stop at any moment (process Ender; FAIL_ANY: or
 * pool_fail).  The producers check failed / stopped at wait_space's loop
 * top, in its re-check and under prod_lock before their own take; offer
 * refuses once stopped; pool_take_pending takes nothing once stopped or
 * failed and returns 1; the stop's final pool_wake_reapers and
 * pool_wake_producers, pool_fail's wakes.  A producer returns the count
 * taken or -EPIPE / the failure and submits no more; a reaper returns once
 * failed, or stopped with nothing in flight (-ENODATA).  Checked: nobody
 * sleeps for ever, every task taken (by a producer or a reaper) is
 * delivered exactly once (but after a failure).
 *
 * Promptness (the point of the pending batch: its producer wakes when its
 * batch is finished, not a completion later): a reaper may hold a delivery
 * back (a long task, a slow reaper) until no finished batch is offered.  A
 * producer whose finished batch needs another completion to be noticed
 * (the wake for it lost) then sleeps for ever: an invalid end state.
 * Without this, such a producer is only late: the next completion frees
 * room and wakes it (MUT_NOFINWAKE and MUT_NOFINCHECK then verify).
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
 * the record, and sleeping reapers are woken: wake_reapers_locked); the
 * replacement's SQ is rewritten from the record [rec_head, sq_tail) and its
 * sq_head is rec_head, so the task in hand runs first.  One worker: a
 * task's seq and index are the same number here (its id = its push order).
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
 *                 woken, but a futex sleeper sleeps on the bumped value: the
 *                 next wake for new work is skipped.  A lost wake-up.  (A
 *                 pipe's owner survives it: the bump's byte is in the pipe.)
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
 *   MUT_NOPOKE    the worker's evc_wake_fd bumps cq_seq but writes no byte:
 *                 the reaper polling its pipe is never woken.
 *   MUT_DRAINFIRST  evc_sleep_fd drains the pipe between its seq check and
 *                 its poll: a waker that bumps after the check and writes
 *                 its byte before the drain is lost.
 *   MUT_WEIGHT1   every reaper announces with weight 1 (needs NREAP 2): the
 *                 pipe's owner counted with a futex sleeper makes an even
 *                 count, so the waker writes no byte.
 *   MUT_PWEIGHT1  the same for the producers (needs NPROD 2).
 *   MUT_EARLYRELEASE  a producer gives up the pipe (space_pipe_busy = 0)
 *                 before its evc_done_w: the next owner's weight 1 and the
 *                 old one's make an even count, and no byte is written.
 *   MUT_NOFINWAKE pool_take_pending wakes only for room left, not for the
 *                 batch it finished (`return 0 instead of finished`).
 *   MUT_NOFINCHECK  wait_space's re-check after the announcement lacks
 *                 `offered && finished(pd)`.
 *   MUT_LOCKFREEWITHDRAW  withdraw clears pend without prod_lock.
 *   MUT_LOCKFREEPEND  pool_take_pending reads pend before taking prod_lock.
 *   MUT_NOWITHDRAW  wait_space returns without withdrawing (pend still
 *                 names the returned call's pd).
 *   MUT_DONEBEFOREWITHDRAW  submit_batch reads pd.done before the
 *                 withdraw (in wait_space's last step).
 *   MUT_HINTTRUST pool_take_pending returns 0 (no wake) when nothing is
 *                 offered: it trusts the stale hint (needs NPROD 2).
 *   MUT_NOERRSET  pool_take_pending does not set pd.err when take_locked
 *                 stops short (ERR).
 *   (MUT_NOFINWAKE and MUT_NOFINCHECK: with ERR, the wake and the re-check
 *                 without pending_failed, i.e. without err.)
 *   MUT_SKIPBAD   take_locked skips an entry it cannot take and takes the
 *                 next (ERR).
 *   MUT_TAKESTOPPED  pool_take_pending without its stopped / failed test
 *                 (STOP_ANY).
 *   MUT_NOFAILWAKE  pool_fail does not wake the producers (FAIL_ANY).
 *   MUT_NOSTOPREAPWAKE  arena_pool_stop's final pool_wake_reapers left out.
 * Verify (redundant, see README.md): MUT_STOPNOWAKE (pool_take_pending
 * returns 0 once stopped / failed), MUT_NOSTOPWAKE (no final
 * pool_wake_producers in arena_pool_stop); the two together are caught.
 * Tried and kept out of `make model` because they verify (no wake-up lost;
 * see README.md): MUT_NOREREAD (evc_sleep_fd polls without re-reading seq),
 * MUT_DRAINBEFORE (drain, then check seq, then poll) and MUT_LATEOFFER (the
 * offer after evc_prepare's re-check, just before the sleep).
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
#ifndef NREAP
#define NREAP 1          /* reaper threads (1 or 2) */
#endif
#ifndef NPROD
#define NPROD 1          /* producer threads (1 or 2) */
#endif
#ifndef PIPECAP
#define PIPECAP 1        /* bytes a wake pipe holds (see above) */
#endif
#ifndef BATCH
#define BATCH 1          /* tasks a producer submits in one call, at most */
#endif
#define NONE 255         /* EVC_NONE: no generation equals it; no task */
#ifndef SPACE_NEED
#define SPACE_NEED 1     /* depth < 8 (the C: depth / 4 from depth 8; see ERR) */
#endif

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

/* ---- the reapers' eventcount (g->cq_seq, g->cq_waiters; consumer-owned),
 * their wake pipe (wake_r/wake_w) and who owns it ---- */
byte cq_seq;
byte cq_sl, cq_gn;       /* sleepers (weights), generation */
byte cq_pipe;            /* bytes in the reapers' wake pipe */
bit cq_fq;               /* a reaper queued in FUTEX_WAIT(&cq_seq) */
bit uring_busy;          /* p->uring_busy (cons_lock) */
bit cons_lock;

/* ---- parent-private ---- */
byte rec[DEPTH];         /* wp->recs[pos]: the task (seq = index = id) */
byte rec_att[DEPTH];     /* recs[pos].attempts */
byte pub_tail;           /* wp->pub_tail */
byte rec_head;           /* pw->rec_head: oldest task in flight on the worker */
byte res_end;            /* results harvested (pw->fifo tail) */
byte inflight;           /* p->inflight */
byte space_seq;          /* p->space_seq */
byte ps_sl, ps_gn;       /* p->space_ann (producers) */
byte space_pipe;         /* bytes in the producers' wake pipe (space_r/space_w) */
bit ps_fq;               /* a producer queued in FUTEX_WAIT(&space_seq) */
bit space_busy;          /* p->space_pipe_busy */
bit p_stopped;           /* p->stopped */
#ifdef ERR
/* ERR: one entry of producer 0's share cannot be taken: batch_get fails
 * (-EINVAL / -ERANGE: nothing counted) or its dispatch fails (-ECHILD:
 * counted, then given back).  Its position and kind are chosen at the
 * start (BADPOS fixes the position). */
byte pd_err[NPROD];      /* pd.err (written under prod_lock) */
byte bad_pos = NONE;     /* the entry's position in producer 0's share */
bit bad_disp;            /* its kind: 0 batch_get, 1 dispatch */
byte pos0;               /* ghost: producer 0's call's first position */
byte next0;              /* ghost: the next position producer 0's tasks are taken from */
bit bad_hit;             /* ghost: a reaper's take stopped short for producer 0's call */
#define PERR(k) (pd_err[k] != 0)
#define NGOOD (NTASKS - 1)
#else
#define PERR(k) 0
#define NGOOD NTASKS
#endif
#ifdef STOP_ANY
/* STOP_ANY: arena_pool_stop at any moment (FAIL_ANY: or pool_fail) */
bit p_failed;            /* p->failed */
bit reap_woke;           /* pool_wake_reapers was called (REAPER_AWAITS) */
#define ENDED (p_stopped || p_failed)
#else
#define ENDED 0
#endif
byte pend = NONE;        /* p->pend: the producer whose batch is offered */
bit ever_offered;        /* p->pend_offered was set once (the hint's values) */
byte pd_n[NPROD];        /* its struct pending: n (set while offered) */
byte pd_done[NPROD];     /* done: entries taken (by reapers) */
byte taken_for[NPROD];   /* ghost: tasks taken for the call in progress */
byte prod_last = NONE;   /* wp[0].wake_gen: the producers' *last (prod_lock) */
byte cons_space_last = NONE; /* w[0].space_gen: the consumer's *last (release) */
byte cons_prod_last = NONE;  /* p->space_gen: the consumer's *last (producer) */
bit prod_lock;
byte delivered[NTASKS];
byte ndelivered;
byte pdone;              /* producers finished submitting */
byte rdone;              /* reapers returned */

/* ---- life and death ---- */
bit alive, kill, dead, wstarted;
byte deaths;
byte held = NONE;        /* ghost: the task the worker holds (see above) */
#define lock(l)   atomic { l == 0 -> l = 1 }
#define unlock(l) l = 0
#if NREAP > 1
#define CLOCK     lock(cons_lock)
#define CUNLOCK   unlock(cons_lock)
#else
#define CLOCK     skip           /* one reaper: nobody to exclude */
#define CUNLOCK   skip
#endif

/* evc_prepare_w's announcement (S1): w sleepers, one generation. */
#ifdef MUT_NOGEN
#define ANNOUNCE(sl, gn, w)  sl = sl + w                  /* MUTANT: no new generation */
#else
#define ANNOUNCE(sl, gn, w)  atomic { sl = sl + w; gn++ }
#endif
#define DONE(sl, w)   atomic { assert(sl >= w); sl = sl - w }  /* never borrows */

/* evc_wake(_fenced) for the worker's word: after the waker's fence.  Its
 * FUTEX_WAKE always follows the bump. */
#define WAKE(sl, gn, last, seqw)                                         \
	atomic { a_sl = sl; a_gn = gn };     /* one load of ann */        \
	if                                                                \
	:: a_sl > 0 && a_gn != last ->                                    \
		atomic { last = a_gn; a_sl = 0; a_gn = 0; seqw++ }        \
	:: else -> a_sl = 0; a_gn = 0                                     \
	fi

/* The worker's wakers (producer: tasks; consumer: result space).  With
 * WORKER_AWAITS the worker never announces itself, so they have nothing
 * to do. */
#ifdef WORKER_AWAITS
#define WAKE_WORKER(sl, gn, last) skip
#else
#define WAKE_WORKER(sl, gn, last) WAKE(sl, gn, last, wake_seq)
#endif

/* sys_poke: a write to a full pipe fails with EAGAIN and is dropped. */
#define POKE(pipe) atomic { if :: pipe < PIPECAP -> pipe++ :: else -> skip fi }

/* evc_wake_fd, after the waker's fence: one load of ann (W2); the decision
 * and the bump (W3); then, if the count is odd (the pipe's owner is
 * counted), a byte (`poke` 0: no byte, a mutant); then, if it is 2 or more
 * (a futex sleeper is counted), FUTEX_WAKE of all.  `nsl`: the sleepers
 * that can share the word (1: a count >= 2 cannot occur, and the
 * FUTEX_WAKE step is left out). */
#define CAT(a, b)  CAT_(a, b)
#define CAT_(a, b) a ## b
#define POKE_IF_ODD(pipe, poke)                                          \
	if                                                                \
	:: (a_sl & 1) && (poke) && pipe < PIPECAP -> pipe++               \
	:: else -> skip                  /* no byte, or EAGAIN */         \
	fi
#define WAKE_TAIL_1(pipe, fq, poke)                                      \
	atomic { POKE_IF_ODD(pipe, poke); a_sl = 0 }
#define WAKE_TAIL_2(pipe, fq, poke)                                      \
	atomic { POKE_IF_ODD(pipe, poke); if :: a_sl < 2 -> a_sl = 0 :: else -> skip fi }; \
	if                                                                \
	:: atomic { a_sl >= 2 -> fq = 0; a_sl = 0 }   /* FUTEX_WAKE */    \
	:: else -> skip                                                   \
	fi
#define WAKE_FD(sl, gn, last, seqw, pipe, fq, poke, nsl)                 \
	atomic { a_sl = sl; a_gn = gn };                                  \
	if                                                                \
	:: atomic { a_sl > 0 && a_gn != last ->                           \
		last = a_gn; a_gn = 0; seqw++ };                          \
		CAT(WAKE_TAIL_, nsl)(pipe, fq, poke)                      \
	:: else -> a_sl = 0; a_gn = 0                                     \
	fi

/* pool_wake_reapers (wake_reapers_locked when a reaper is counted): bump,
 * FUTEX_WAKE all, a byte. */
#define WAKE_REAPERS                                                      \
	if                                                                \
	:: cq_sl > 0 -> cq_seq++; cq_fq = 0; POKE(cq_pipe)                \
	:: else -> skip                                                   \
	fi

/* evc_sleep_fd: FUTEX_WAIT's compare (seq still v), then poll (blocks
 * until a byte is in the pipe, or `also`: the io_uring), then drain.  The
 * compare and the poll are one step when the poll returns at once: while
 * we own the pipe nobody else drains it, so between the two its bytes can
 * only grow (a reduction, not a change; MUT_DRAINFIRST keeps them apart). */
#if defined(MUT_DRAINFIRST)
#define SLEEP_FD(seqw, v, pipe, also)                                    \
	if                                                                \
	:: seqw == v -> pipe = 0;        /* MUTANT: drain, then poll */  \
		(pipe > 0 || also);                                       \
		atomic { pipe = 0; v = 0 }                                \
	:: seqw != v -> atomic { pipe = 0; v = 0 }                        \
	fi
#elif defined(MUT_DRAINBEFORE)
#define SLEEP_FD(seqw, v, pipe, also)                                    \
	pipe = 0;                        /* MUTANT: drain first */        \
	if                                                                \
	:: atomic { seqw == v -> (pipe > 0 || also) }; v = 0              \
	:: atomic { seqw != v -> v = 0 }                                  \
	fi
#elif defined(MUT_NOREREAD)
#define SLEEP_FD(seqw, v, pipe, also)                                    \
	(pipe > 0 || also);              /* MUTANT: poll at once */       \
	atomic { pipe = 0; v = 0 }
#else
#define SLEEP_FD(seqw, v, pipe, also)                                    \
	if                                                                \
	:: atomic { seqw == v -> (pipe > 0 || also) }  /* level-triggered */ \
		atomic { pipe = 0; v = 0 }       /* sys_drain */          \
	:: seqw != v -> atomic { pipe = 0; v = 0 }                        \
	fi
#endif

/* FUTEX_WAIT(&seqw, v) for a word whose FUTEX_WAKE is modelled apart:
 * queued if seq is still v (one step: the kernel's compare under its hash
 * lock), then blocked until a FUTEX_WAKE dequeues it.  One futex sleeper
 * per word here (the others own the pipe). */
#define FUTEX_WAIT(seqw, v, fq)                                          \
	atomic { if :: seqw == v -> assert(!fq); fq = 1 :: else -> skip fi; v = 0 }; \
	(!fq)

/* evc_prepare + the caller's re-check: v is the futex word's value read
 * BEFORE the announcement (so a wake that bumps it after seeing the
 * announcement makes FUTEX_WAIT return at once), then announce (S1), fence,
 * re-check the condition.  Spurious wake-ups are not modelled: a timeout
 * could only mask a lost wake-up. */
#if defined(MUT_NOFENCE)
#define PREPARE(sl, gn, w, seqw, v, rdy, readyexpr) \
	v = seqw; rdy = (readyexpr); ANNOUNCE(sl, gn, w)   /* MUTANT: loads pass the store */
#elif defined(MUT_LATEV)
#define PREPARE(sl, gn, w, seqw, v, rdy, readyexpr) \
	ANNOUNCE(sl, gn, w); v = seqw; rdy = (readyexpr)   /* MUTANT: v read after S1 */
#else
#define PREPARE(sl, gn, w, seqw, v, rdy, readyexpr) \
	v = seqw; ANNOUNCE(sl, gn, w); rdy = (readyexpr)
#endif

#ifdef MUT_NOSIGNAL
#define SIGNAL_BEFORE_SLEEP skip                        /* MUTANT */
#else
#define SIGNAL_BEFORE_SLEEP if :: unsig > 0 -> SIGNAL_CONSUMER :: else -> skip fi
#endif

#ifdef MUT_NOPOKE
#define W_POKE 0                                        /* MUTANT: no byte */
#else
#define W_POKE 1
#endif

/* worker.c signal_consumer: evc_wake_fd(cq_waiters.ann, &cq_gen, cq_seq,
 * wake_fd). */
#define SIGNAL_CONSUMER unsig = 0; WAKE_FD(cq_sl, cq_gn, cq_last, cq_seq, cq_pipe, cq_fq, W_POKE, NREAP)

/* worker.c idle_wait (WORKER_AWAITS: see the top; it still signals
 * first). */
#ifdef WORKER_AWAITS
#define IDLE_WAIT(sl, gn, readyexpr)                                      \
	SIGNAL_BEFORE_SLEEP;                                              \
	(readyexpr)
#else
#define IDLE_WAIT(sl, gn, readyexpr)                                      \
	SIGNAL_BEFORE_SLEEP;                                              \
	PREPARE(sl, gn, 1, wake_seq, v, rdy, readyexpr);                  \
	if                                                                \
	:: rdy -> rdy = 0; v = 0; DONE(sl, 1)                             \
	:: else ->                                                        \
		w_sleeping = 1;                                           \
		(wake_seq != v);          /* FUTEX_WAIT(&wake_seq, v) */   \
		v = 0;                                                    \
		DONE(sl, 1);                                              \
		w_sleeping = 0                                            \
	fi
#endif

#define TASKS_READY (sq_tail != head || stop)
#define SPACE_READY (res_rel != rel_seen)

/* worker.c run_one: take the task (inhand.seq, then inhand_valid, then
 * sq_head); post: the CQE, then cq_tail (release), then inhand_valid = 0.
 * Without deaths nobody reads the in-hand words, sq_head or an unpublished
 * CQE slot (only pool_handle_exit and a replacement do), so with
 * MAXDEATH 0 those stores are one step with the SQ slot's read and with
 * the publication: a reduction, not a change. */
#if MAXDEATH == 0 && !defined(MUT_ORDER)
#define TAKE                                                              \
	atomic { id = sq[head % DEPTH]; inhand_id = id; inhand_valid = 1;  \
		 held = id; head++; sq_head = head }
#define POST                                                              \
	atomic {                          /* result bytes, the CQE, cq_tail */ \
		rel_seen = 0; ru++;                                       \
		assert(ctail - cq_head < DEPTH); /* CQ never overflows */ \
		cq[ctail % DEPTH] = id;                                   \
		ctail++; cq_tail = ctail; held = NONE;                    \
		inhand_valid = 0; unsig++                                 \
	}
#else
#define TAKE                                                              \
	id = sq[head % DEPTH];                                            \
	inhand_id = id;                                                   \
	atomic { inhand_valid = 1; held = id };                           \
	head++; sq_head = head
#ifdef MUT_ORDER
#define CLEAR_THEN_PUBLISH                                                \
	inhand_valid = 0;                               /* MUTANT */      \
	atomic { ctail++; cq_tail = ctail; held = NONE };                 \
	unsig++
#else
#define CLEAR_THEN_PUBLISH                                                \
	atomic { ctail++; cq_tail = ctail; held = NONE }; /* release */   \
	atomic { inhand_valid = 0; unsig++ }
#endif
#define POST                                                              \
	atomic {                          /* result bytes, then the CQE */ \
		rel_seen = 0; ru++;                                       \
		assert(ctail - cq_head < DEPTH); /* CQ never overflows */ \
		cq[ctail % DEPTH] = id                                    \
	};                                                                \
	CLEAR_THEN_PUBLISH
#endif

/* worker.c run_one + run_task + post for the task at SQ position head */
#define RUN_ONE                                                           \
	TAKE;                                                             \
	/* result space: wait while our area is full (more_room) */      \
	do                                                                \
	:: rel_seen = res_rel;                                            \
		if                                                        \
		:: ru - rel_seen < RCAP -> break                          \
		:: else -> IDLE_WAIT(space_sl, space_gn, SPACE_READY)     \
		fi                                                        \
	od;                                                               \
	POST

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
					RUN_ONE;
					/* signal_due: when the queue ran dry, maybe
					 * earlier (batch, delay); at the batch's end
					 * not if more was queued since the tail was
					 * taken (queued_since re-reads sq_tail), the
					 * loop then runs it */
					if
					:: tail == head -> SIGNAL_CONSUMER
					:: tail == head && sq_tail != tail -> skip
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
	:: ndelivered == NGOOD -> break
	od
}

/* submit.c pool_publish_locked: pub_tail (release), then sq_tail (release),
 * for the k tasks pushed */
#ifdef MUT_PUBORDER
#define PUBLISH(k) sq_tail = sq_tail + k; pub_tail = pub_tail + k   /* MUTANT */
#else
#define PUBLISH(k) pub_tail = pub_tail + k; sq_tail = sq_tail + k
#endif

/* submit.c push_to, k times: record, then SQ slot (beyond the published
 * tails: nobody reads them before PUBLISH) */
#define PUSH(k)                                                           \
	id = 0;                                                           \
	do                                                                \
	:: id < k ->                                                      \
		/* a record slot is free; never more than NTASKS */       \
		assert(sq_tail + id - rec_head < DEPTH);                  \
		assert(sq_tail + id < NTASKS);                            \
		rec[(sq_tail + id) % DEPTH] = sq_tail + id;               \
		rec_att[(sq_tail + id) % DEPTH] = 0;                      \
		sq[(sq_tail + id) % DEPTH] = sq_tail + id;                \
		id++                                                      \
	:: else -> break                                                  \
	od;                                                               \
	id = 0

/* submit.c take_locked(k), prod_lock held, k > 0 and free in flight:
 * counted in flight (one add), pushed, published, the worker's wake
 * check. */
#ifndef ERR
#define TAKE_LOCKED(k)                                                    \
	inflight = inflight + k;                                          \
	d_step { PUSH(k) };                                               \
	PUBLISH(k);                                  /* W1; fence */      \
	WAKE_WORKER(wake_sl, wake_gn, prod_last)
#else
/* ERR: take_locked(from, k) takes the valid prefix: tk entries, up to the
 * bad one (VALID).  batch_get's failure is found before the count (tk
 * counted); a dispatch failure after it (k counted, tk dispatched, k - tk
 * given back, then evc_wake_fd with no gen: GIVE_BACK).  The published
 * tails and the worker's wake check only if something was dispatched. */
#ifdef MUT_SKIPBAD
/* MUTANT: take_locked skips an entry it cannot take and takes the next */
#define VALID(who, from, k) (k)
#define PUSHPOS(who, from, k)                                             \
	if                                                                \
	:: (who) == 0 && bad_pos >= (from) && bad_pos < (from) + (k) ->   \
		assert((from) == next0); next0 = (from) + (k) + 1          \
	:: else -> POSCHECK(who, from, k)                                 \
	fi
#else
#define VALID(who, from, k)                                               \
	((who) == 0 && bad_pos >= (from) && bad_pos < (from) + (k) -> bad_pos - (from) : (k))
#define PUSHPOS(who, from, k) POSCHECK(who, from, k)
#endif
/* nothing is taken past the bad entry: producer 0's entries are taken in
 * order (from next0, which skips the bad one only once its call returned
 * the error), never the bad one */
#define POSCHECK(who, from, k)                                            \
	if                                                                \
	:: (who) == 0 && (k) > 0 ->                                       \
		assert((from) == next0);                                  \
		assert(bad_pos < (from) || bad_pos >= (from) + (k));      \
		next0 = (from) + (k)                                      \
	:: else -> skip                                                   \
	fi
#ifdef PROD_FUTEX
#define GB_NSL 1
#else
#define GB_NSL NPROD
#endif
/* evc_wake_fd(&space_ann, NULL, ...): no generation skip */
#define GIVE_BACK(k)                                                      \
	if                                                                \
	:: tk < (k) && bad_disp ->                                        \
		inflight = inflight - ((k) - tk);                         \
		atomic { a_sl = ps_sl; a_gn = 0 };                        \
		if                                                        \
		:: atomic { a_sl > 0 -> space_seq++ };                    \
			CAT(WAKE_TAIL_, GB_NSL)(space_pipe, ps_fq, 1)     \
		:: else -> a_sl = 0                                       \
		fi                                                        \
	:: else -> skip                                                   \
	fi
#define TAKE_LOCKED(k)                                                    \
	atomic {                                                          \
		tk = VALID(ME, pos0, k);                                  \
		inflight = inflight + (bad_disp -> k : tk);               \
		PUSH(tk);                                                 \
		PUSHPOS(ME, pos0, tk)                                     \
	};                                                                \
	if                                                                \
	:: tk > 0 ->                                                      \
		PUBLISH(tk);                             /* W1; fence */  \
		WAKE_WORKER(wake_sl, wake_gn, prod_last)                  \
	:: else -> skip                                                   \
	fi;                                                               \
	GIVE_BACK(k)
#endif

/* The pending batch (submit.c struct pending): pend is the producer whose
 * batch is offered, or NONE; pd_n / pd_done its call's n and done (done
 * written under prod_lock, read by its producer without it); pd_err its
 * err (ERR only: without it no entry is invalid and no dispatch fails). */
#define FIN(k) (pd_done[k] == pd_n[k] || PERR(k))  /* pending_failed (done == n: unreachable) */
/* offer / withdraw: critical sections on lock-protected words only, so one
 * step each (lock, body, unlock).  ever_offered: pend_offered was 1 once
 * (the hint's possible values, below). */
#if defined(MUT_LOCKFREEWITHDRAW)
#define WITHDRAW atomic { pend = NONE; pd_n[ME] = 0; offered = 0 } /* MUTANT: no lock */
#elif defined(MUT_NOWITHDRAW)
#define WITHDRAW offered = 0             /* MUTANT: pend left set */
#else
#define WITHDRAW atomic { prod_lock == 0 -> pend = NONE; pd_n[ME] = 0; offered = 0 }
#endif
#define OFFER                                                             \
	atomic { prod_lock == 0 ->                                        \
		if                                                        \
		:: pend == NONE && !p_stopped -> pend = ME; pd_n[ME] = n; \
			ever_offered = 1; offered = 1                     \
		:: else -> skip         /* another producer's is offered */ \
		fi }

/* wait_space's re-check after the announcement (evc_prepare_w): room, or
 * our batch failed (err), or (STOP_ANY) stopped or failed. */
#ifdef MUT_NOFINCHECK
#define SPACE_OK (DEPTH - inflight >= SPACE_NEED || ENDED)       /* MUTANT */
#else
#define SPACE_OK (DEPTH - inflight >= SPACE_NEED || (offered && FIN(ME)) || ENDED)
#endif
/* the offer: before the announcement (MUT_LATEOFFER: after the re-check,
 * just before the sleep) */
#ifdef MUT_LATEOFFER
#define OFFER_EARLY skip
#define OFFER_LATE  if :: !offered -> OFFER :: else -> skip fi
#else
#define OFFER_EARLY if :: !offered -> OFFER :: else -> skip fi
#define OFFER_LATE  skip
#endif

/* submit.c wait_space: one producer at a time owns the pipe (exchange on
 * space_pipe_busy), weight 1; the others sleep on the futex, weight 2.
 * With one producer it always owns the pipe. */
#ifdef MUT_PWEIGHT1
#define PROD_WEIGHT 1                    /* MUTANT: owner or not, weight 1 */
#else
#define PROD_WEIGHT (2 - own)
#endif
/* evc_done_w, then the pipe's release (release store; the next owner's
 * exchange is its acquire): the owner's weight is gone before another
 * producer can announce with weight 1. */
#ifdef MUT_EARLYRELEASE
#define PDONE_RELEASE                                                     \
	atomic { if :: own -> space_busy = 0 :: else -> skip fi };  /* MUTANT */ \
	atomic { DONE(ps_sl, w); own = 0; w = 0 }
#else
#define PDONE_RELEASE                                                     \
	DONE(ps_sl, w);                                                   \
	atomic { if :: own -> space_busy = 0 :: else -> skip fi; own = 0; w = 0 }
#endif
#if defined(PROD_FUTEX)
/* tasks short (pool_tasks_long 0): every producer sleeps on the futex,
 * weight 2, so every bump of space_seq is followed by FUTEX_WAKE (the
 * count is >= 2): "blocked until space_seq != v" is that futex exactly, as
 * for the worker, and any number of producers may sleep on it */
#define PSLEEP atomic { space_seq != v -> v = 0 }
#define PWEIGHT
#define PW 2
#undef PDONE_RELEASE
#define PDONE_RELEASE DONE(ps_sl, 2)
#elif NPROD > 1
#define PSLEEP                                                            \
	if                                                                \
	:: own -> SLEEP_FD(space_seq, v, space_pipe, 0)                   \
	:: else -> FUTEX_WAIT(space_seq, v, ps_fq)                        \
	fi
#define PWEIGHT atomic { own = !space_busy; space_busy = 1; w = PROD_WEIGHT };
#define PW w
#else
#define PSLEEP SLEEP_FD(space_seq, v, space_pipe, 0)
#define PWEIGHT                          /* the owner, weight 1 */
#define PW 1
#undef PDONE_RELEASE
#define PDONE_RELEASE DONE(ps_sl, 1)
#endif
/* Until there is room or (offered) our batch is finished; then withdraw.
 * submit_batch reads pd.done after it (DONE_SEEN; MUT_DONEBEFOREWITHDRAW:
 * before, the value in dn). */
#ifdef MUT_DONEBEFOREWITHDRAW
#define SNAP dn = pd_done[ME];                  /* MUTANT */
#define DONE_SEEN dn
#else
#define SNAP
#define DONE_SEEN pd_done[ME]
#endif
/* wait_space's loop top: failed or stopped (-EPIPE) first; wr: its r < 0 */
#ifdef STOP_ANY
#define WS_ENDED                                                          \
	:: ENDED -> wr = 1;                                               \
		if                                                        \
		:: offered -> SNAP WITHDRAW                               \
		:: else -> skip                                           \
		fi;                                                       \
		break
#else
#define WS_ENDED
#endif
#ifdef PRODUCER_AWAITS
/* PROD_TIMEOUTS: the producer's deadline may pass at any time: its sleep
 * ends, and the loop top (after the room and finished checks) leaves with
 * -ETIMEDOUT, withdrawing first: withdraw at any moment. */
#ifdef PROD_TIMEOUTS
#define TIMED_OUT                                                         \
	:: tmo = 1;                                                       \
		if                                                        \
		:: offered -> SNAP WITHDRAW                               \
		:: else -> skip                                           \
		fi;                                                       \
		break
#define TMO_WAKE || 1
#else
#define TIMED_OUT
#define TMO_WAKE
#endif
#define WAIT_SPACE                                                        \
	do                                                                \
	WS_ENDED                                                          \
	:: !ENDED && !offered && inflight < DEPTH -> break                \
	:: !ENDED && offered && (FIN(ME) || inflight < DEPTH) -> SNAP WITHDRAW; break \
	:: else ->                                                        \
		if                                                        \
		TIMED_OUT                                                 \
		:: OFFER_EARLY;                                           \
			/* woken when it holds, or (not offered) when the \
			 * offer may succeed */                           \
			(SPACE_OK || (!offered && pend == NONE) TMO_WAKE) \
		fi                                                        \
	od
#else
#define WAIT_SPACE                                                        \
	do                                                                \
	WS_ENDED                                                          \
	:: !ENDED && !offered && inflight < DEPTH -> break                \
	:: !ENDED && offered && (FIN(ME) || inflight < DEPTH) -> SNAP WITHDRAW; break \
	:: else ->                                                        \
		OFFER_EARLY;                                              \
		PWEIGHT                                                   \
		PREPARE(ps_sl, ps_gn, PW, space_seq, v, rdy, SPACE_OK);   \
		if                                                        \
		:: atomic { rdy -> rdy = 0; v = 0 }                       \
		:: else -> OFFER_LATE; PSLEEP                             \
		fi;                                                       \
		PDONE_RELEASE                                             \
	od
#endif

#define ME (_pid - 1)        /* producer k is pid k + 1 (the killer is 0) */
#define SHARE(k) (NTASKS / NPROD + ((k) < NTASKS % NPROD))
#ifdef STOP_ANY
#define WR wr
#else
#define WR 0
#endif
#ifdef ERR
/* the call's first entry is the bad one and batch_get says so */
#define BAD_AT_START (ME == 0 && bad_pos == SHARE(0) - left && !bad_disp)
#define SET_POS0 if :: ME == 0 -> pos0 = SHARE(0) - left :: else -> skip fi
/* a count returned with err set: the next entry is the bad one */
#define CHECK_ERR_COUNT assert(!PERR(ME) || (ME == 0 && bad_pos == pos0 + DONE_SEEN))
#define CLEAR_ERR pd_err[ME] = 0; if :: ME == 0 -> bad_hit = 0 :: else -> skip fi
/* take_locked's return: the count, or (none) the error of the call's
 * first entry, a failed dispatch: the caller skips it */
#define TAKEN_LEFT                                                        \
	left = left - tk;                                                 \
	if                                                                \
	:: tk == 0 ->                                                     \
		assert(ME == 0 && bad_disp && bad_pos == pos0 && next0 == pos0); \
		next0++; left--                                           \
	:: else -> skip                                                   \
	fi;                                                               \
	CLEAR_ERR; tk = 0; room = 0; n = 0
#else
#define BAD_AT_START 0
#define SET_POS0 skip
#define CHECK_ERR_COUNT skip
#define CLEAR_ERR skip
#define TAKEN_LEFT left = left - room; room = 0; n = 0
#endif

active [NPROD] proctype Producer()
{
	byte n, left, id, v, a_sl, a_gn, w, room;
	bit rdy, own, offered, tmo;
	byte dn;                 /* MUT_DONEBEFOREWITHDRAW only */
#ifdef ERR
	byte tk;                 /* take_locked's count */
#endif
#ifdef STOP_ANY
	bit wr;                  /* wait_space returned failed or -EPIPE */
#endif

	/* producer k submits its share in calls of up to BATCH tasks, the
	 * rest again after each call (by what the call returned) */
	d_step {
		assert(_pid >= 1 && _pid <= NPROD);
		left = NTASKS / NPROD + (ME < NTASKS % NPROD)
	};
#ifdef ERR
	/* producer 0's entry that cannot be taken: where, and why */
	if
	:: ME == 0 -> atomic {
#ifdef BADPOS
		bad_pos = BADPOS;
#else
		bad_pos = 0;
		do :: bad_pos < SHARE(0) - 1 -> bad_pos++ :: break od;
#endif
#ifdef BADKIND
		bad_disp = BADKIND
#else
		if :: bad_disp = 0 :: bad_disp = 1 fi
#endif
		}
	:: else -> skip
	fi;
#endif
	do
	:: left == 0 -> break
#ifdef ERR
	/* batch_get(b, 0) fails: the call returns the error at once; the
	 * caller skips that entry and submits the rest */
	:: d_step { left > 0 && BAD_AT_START ->
		assert(next0 == bad_pos); next0++; left-- }
#endif
	:: d_step { left > 0 && !BAD_AT_START -> n = (left < BATCH -> left : BATCH);
		SET_POS0 };
		/* submit_batch(n), its pd = { n, done 0 } */
call:		WAIT_SPACE;
		/* Withdrawn (or never offered): nobody writes pd_done now, so
		 * its load is one step with what follows. */
		if
		:: d_step { DONE_SEEN > 0 -> tmo = 0;
			/* reapers took entries for us: that is our answer */
			assert(DONE_SEEN == taken_for[ME]);
			CHECK_ERR_COUNT;
			left = left - DONE_SEEN;
			pd_done[ME] = 0; taken_for[ME] = 0; n = 0; dn = 0;
			CLEAR_ERR }
#ifdef STOP_ANY
		/* failed, or -EPIPE: nothing taken, the caller stops */
		:: d_step { DONE_SEEN == 0 && wr -> assert(taken_for[ME] == 0);
			wr = 0; left = 0; n = 0; CLEAR_ERR }
		/* the same under prod_lock (submit_batch's own check) */
		:: atomic { DONE_SEEN == 0 && !WR && !PERR(ME) && prod_lock == 0 && ENDED ->
			assert(taken_for[ME] == 0); left = 0; n = 0 }
#endif
#ifdef ERR
		/* pd.err, nothing taken (the dispatch of the call's first
		 * entry failed): the error; the caller skips that entry */
		:: d_step { DONE_SEEN == 0 && !WR && PERR(ME) ->
			assert(taken_for[ME] == 0);
			assert(ME == 0 && bad_disp && bad_pos == pos0 && next0 == pos0);
			next0++; left--; n = 0; CLEAR_ERR }
#endif
		/* the room again under prod_lock (another producer may
		 * have taken it): lock, look (and unlock) */
#if NPROD == 1 && BATCH == 1
		/* alone, nobody takes the room we saw (reapers take only
		 * for an offered batch): a task of room, as the old model */
		:: atomic { DONE_SEEN == 0 && !tmo && !WR && !ENDED && prod_lock == 0 ->
			prod_lock = 1; room = 1 };
#else
		:: atomic { DONE_SEEN == 0 && !tmo && !WR && !PERR(ME) && !ENDED &&
			    prod_lock == 0 && inflight == DEPTH };
			goto call
		:: atomic { DONE_SEEN == 0 && !tmo && !WR && !PERR(ME) && !ENDED &&
			    prod_lock == 0 && inflight < DEPTH ->
			prod_lock = 1; room = DEPTH - inflight;
			if :: room > n -> room = n :: else -> skip fi };
#endif
			TAKE_LOCKED(room);
			atomic {
				unlock(prod_lock);
				assert(taken_for[ME] == 0);   /* none by reapers */
				TAKEN_LEFT
			}
#ifdef PROD_TIMEOUTS
		/* -ETIMEDOUT, nothing taken: the caller submits again */
		:: atomic { DONE_SEEN == 0 && tmo -> tmo = 0;
			assert(taken_for[ME] == 0) }; goto call
#endif
		fi
	od;
#ifdef STOP_ANY
	pdone++                  /* the stop is the Ender's */
#else
	/* the last producer: arena_pool_stop (drain): stop, then wake every
	 * worker whether or not it announced itself. */
	atomic { pdone++; own = (pdone == NPROD) };
	if
	:: own ->
		own = 0;
		assert(ps_sl == 0);     /* every producer's evc_done_w done */
		lock(prod_lock);
		p_stopped = 1;
		unlock(prod_lock);
		stop = 1;
		wake_seq++
	:: else -> skip
	fi
#endif
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

/* The reaper's sleep (arena_pool_reap, pool_consumer_sleep): one reaper
 * at a time owns the pipe and the io_uring (uring_busy), weight 1; the
 * others sleep on the futex, weight 2.  evc_prepare_owned, re-check
 * (cq_nonempty), sleep without cons_lock, evc_done_owned with it.
 * uring_busy is read and written only under cons_lock, so it changes in
 * the same step as the lock. */
#ifdef MUT_WEIGHT1
#define REAP_WEIGHT 1                    /* MUTANT: owner or not, weight 1 */
#else
#define REAP_WEIGHT (2 - own)
#endif
#if NREAP > 1
#define REAP_SLEEP                                                        \
	atomic { own = !uring_busy; w = REAP_WEIGHT };                    \
	PREPARE(cq_sl, cq_gn, w, cq_seq, v, rdy, cq_tail != cq_head);     \
	if                                                                \
	:: atomic { rdy -> rdy = 0; v = 0 }                               \
	:: else ->                                                        \
		atomic { uring_busy = uring_busy | own; unlock(cons_lock) }; \
		if                                                        \
		:: own -> SLEEP_FD(cq_seq, v, cq_pipe, dead)              \
		:: else ->                                                \
			atomic { if :: cq_seq == v -> assert(!cq_fq); cq_fq = 1 \
				 :: else -> skip fi; v = 0 };             \
end_futex:		(!cq_fq)      /* see the end labels' note */      \
		fi;                                                       \
		atomic { cons_lock == 0 -> cons_lock = 1;                 \
			 if :: own -> uring_busy = 0 :: else -> skip fi }  \
	fi;                                                               \
	atomic { DONE(cq_sl, w); own = 0; w = 0 }
#elif defined(REAPER_AWAITS)
/* REAPER_AWAITS (see the top): the one reaper blocks until a completion
 * or a death is there */
#ifdef STOP_ANY
/* (pool_wake_reapers: one wake-up, consumed) */
#define REAP_SLEEP atomic { (cq_tail != cq_head || dead || reap_woke) -> reap_woke = 0 }
#else
#define REAP_SLEEP (cq_tail != cq_head || dead)
#endif
#else
#define REAP_SLEEP                                                        \
	PREPARE(cq_sl, cq_gn, 1, cq_seq, v, rdy, cq_tail != cq_head);     \
	if                                                                \
	:: atomic { rdy -> rdy = 0; v = 0 }                               \
	:: else -> SLEEP_FD(cq_seq, v, cq_pipe, dead)                     \
	fi;                                                               \
	DONE(cq_sl, 1)
#endif

/* submit.c pool_take_pending (prod_lock; cons_lock held): if a batch is
 * offered and not finished and more of it is left than the room, take the
 * room's worth of entries (take_locked), then done += taken.  wk: wake the producers
 * (its batch is finished, or room is left); 1 when nothing is offered.
 * Every access to the batch after the lock asserts that it is still
 * offered (pend == rp): its producer has not withdrawn it, so has not
 * returned.
 * Steps: while the reaper holds prod_lock and cons_lock, nobody else writes
 * pend, pd_*, inflight or the tails (producers change them under
 * prod_lock, reapers' decrements are under cons_lock), so the lock and the
 * reads that follow it move right, the last reads and the unlock move
 * left (Lipton): what is left is (1) lock, look and take (the count in
 * flight, the pushes, the publication: take_locked), (2) the worker's wake
 * check, (3) done += taken, the wake decision and the unlock.  Nothing to
 * take (nothing offered, finished, no room): one step. */
#define ROOM_FOR(rp)                                                      \
	room = DEPTH - inflight;                                          \
	if                                                                \
	:: room > pd_n[rp] - pd_done[rp] -> room = pd_n[rp] - pd_done[rp] \
	:: else -> skip                                                   \
	fi
/* Only a take that leaves some of the batch (it saves the producer a
 * wake-up): the rest of a batch that fits the room is the producer's. */
#define CAN_TAKE(rp) (!FIN(rp) && inflight < DEPTH && pd_n[rp] - pd_done[rp] > DEPTH - inflight)
#ifdef MUT_NOFINWAKE
#define TP_WAKE (DEPTH - inflight >= SPACE_NEED)       /* MUTANT: not FIN(rp) */
#else
#define TP_WAKE (FIN(rp) || DEPTH - inflight >= SPACE_NEED)
#endif
#ifdef MUT_HINTTRUST
#define TP_NONE 0             /* MUTANT: nothing offered, no wake */
#else
#define TP_NONE 1
#endif
#ifdef MUT_LOCKFREEPEND
#define TP_READ rp = pend;                /* MUTANT: read before the lock */
#define TP_PEND rp
#else
#define TP_READ
#define TP_PEND pend
#endif
/* stopped or failed: nothing taken, wake (MUT_TAKESTOPPED: no such
 * test; MUT_STOPNOWAKE: no wake) */
#ifdef MUT_STOPNOWAKE
#define TP_ENDED 0
#else
#define TP_ENDED 1
#endif
#if defined(STOP_ANY) && !defined(MUT_TAKESTOPPED)
#define TP_LIVE !ENDED &&
#define TP_ENDED_OPT                                                      \
	:: atomic { prod_lock == 0 && TP_PEND != NONE && ENDED ->         \
		rp = TP_PEND; assert(pend == rp); wk = TP_ENDED; rp = NONE }
#else
#define TP_LIVE
#define TP_ENDED_OPT
#endif
#ifndef ERR
#define TP_TAKE(rp)                                                       \
		inflight = inflight + room;               /* take_locked */ \
		taken_for[rp] = taken_for[rp] + room;                     \
		PUSH(room);                                               \
		pub_tail = pub_tail + room;                               \
		sq_tail = sq_tail + room
#define TP_TAKEN room
#define TP_WAKE_WORKER WAKE_WORKER(wake_sl, wake_gn, prod_last)
#define TP_GIVE_BACK
#define TP_SET_ERR
#else
/* ERR: the valid prefix from done (its first entry may be the bad one:
 * a take of nothing); err when the take stopped short of the room */
#define TP_TAKE(rp)                                                       \
		tk = VALID(rp, pos0 + pd_done[rp], room);                 \
		inflight = inflight + (bad_disp -> room : tk);            \
		taken_for[rp] = taken_for[rp] + tk;                       \
		PUSH(tk);                                                 \
		PUSHPOS(rp, pos0 + pd_done[rp], tk);                      \
		pub_tail = pub_tail + tk;                                 \
		sq_tail = sq_tail + tk;                                   \
		bad_hit = bad_hit || (tk < room)
#define TP_TAKEN tk
#define TP_WAKE_WORKER                                                    \
	if                                                                \
	:: tk > 0 -> WAKE_WORKER(wake_sl, wake_gn, prod_last)             \
	:: else -> skip                                                   \
	fi
#define TP_GIVE_BACK GIVE_BACK(room);
#ifdef MUT_NOERRSET
#define TP_SET_ERR tk = 0                   /* MUTANT: err not set */
#else
#define TP_SET_ERR if :: tk < room -> pd_err[rp] = 1 :: else -> skip fi; tk = 0
#endif
#endif
#define TAKE_PENDING                                                      \
	TP_READ                                                           \
	if                                                                \
	:: atomic { prod_lock == 0 && TP_PEND == NONE -> wk = TP_NONE }   \
	TP_ENDED_OPT                                                      \
	:: atomic { prod_lock == 0 && TP_PEND != NONE && TP_LIVE !CAN_TAKE(TP_PEND) -> \
		rp = TP_PEND; assert(pend == rp); wk = TP_WAKE; rp = NONE } \
	:: atomic { prod_lock == 0 && TP_PEND != NONE && TP_LIVE CAN_TAKE(TP_PEND) -> \
		prod_lock = 1; rp = TP_PEND; assert(pend == rp);          \
		ROOM_FOR(rp);                                             \
		TP_TAKE(rp) }                                             \
	fi;                                                               \
	if                                                                \
	:: rp != NONE ->                                                  \
		TP_WAKE_WORKER;                                           \
		TP_GIVE_BACK                                              \
		atomic { assert(pend == rp);                              \
			 pd_done[rp] = pd_done[rp] + TP_TAKEN;            \
			 TP_SET_ERR; room = 0;                            \
			 wk = TP_WAKE; rp = NONE; unlock(prod_lock) }     \
	:: else -> skip                                                   \
	fi

/* The promptness check: a delivery may be held back (a long task, a slow
 * reaper) until no finished batch is offered.  A producer whose batch is
 * finished must then get away (be woken, withdraw) without another
 * completion; one that needs one sleeps for ever here: an invalid end. */
#ifdef ERR
/* (ERR: or a batch the reapers stopped taking from, ghost bad_hit, so that
 * a mutant that does not set err is held to the same) */
#define FROZEN (pend != NONE && (FIN(pend) || (pend == 0 && bad_hit)))
#else
#define FROZEN (pend != NONE && FIN(pend))
#endif

/* The hint pend_offered (reap.c deliver): a relaxed load with no fence
 * before it, so it may read any value it ever had: 0, or 1 once a batch
 * was ever offered (ever_offered).  Its value is free, so when it is read
 * does not matter: it is chosen in the decrement's step (the only write
 * that changes what it may read, the first offer, commutes with the
 * decrement).  hint 1: wk = 0 and pool_take_pending decides. */
#ifdef HINT0
#define HINT wk = 1                      /* reads 0 (see the top) */
#else
#define HINT if :: wk = 1 :: ever_offered -> wk = 0 fi
#endif

#define WAKE_PRODUCERS                                                    \
	WAKE_FD(ps_sl, ps_gn, cons_prod_last, space_seq, space_pipe, ps_fq, 1, PS_NSL)
#ifdef PROD_FUTEX
#define PS_NSL 1     /* the FUTEX_WAKE is in the producers' await (above) */
#else
#define PS_NSL NPROD
#endif

/* deliver's gap check: depth - left >= space_need (SPACE_NEED 1: always) */
#if SPACE_NEED > 1
#define GAP_HINT if :: DEPTH - inflight >= SPACE_NEED -> gap = 1; HINT :: else -> wk = 0 fi
#define NO_GAP :: !gap -> skip
#define GAP gap &&
#define GAP_CLR gap = 0;
#else
#define GAP_CLR
#define GAP_HINT HINT
#define NO_GAP
#define GAP
#endif
/* ERR, STOP_ANY: a producer may still hold a count it gives back (a failed
 * dispatch) or be on its way out: the last checks wait for them */
#if defined(ERR) || defined(STOP_ANY)
#define FINAL_WAIT pdone == NPROD ->
#else
#define FINAL_WAIT
#endif
#ifdef STOP_ANY
#define P_FAILED p_failed
#else
#define P_FAILED 0
#endif

/* reap.c arena_pool_reap; cons_lock held but while asleep. */
active [NREAP] proctype Consumer()
{
	byte t, id, v, got, rel, k, a_sl, a_gn, w, rp = NONE, room;
	bit rdy, inh, own, wk;
#ifdef ERR
	byte tk;
#endif
#if SPACE_NEED > 1
	bit gap;                 /* the delivery opened a gap of space_need */
#endif

	atomic { if :: !wstarted -> wstarted = 1; alive = 1; run Worker() :: else -> skip fi };
	CLOCK;
	do
	:: ndelivered == NGOOD -> break
#ifdef STOP_ANY
	/* arena_pool_reap: failed, or -ENODATA: stopped, nothing in flight */
	:: ndelivered != NGOOD && (p_failed || (p_stopped && inflight == 0)) -> break
	:: ndelivered != NGOOD && !p_failed && !(p_stopped && inflight == 0) ->
#else
	:: else ->
#endif
		HARVEST;
		/* pool_supervise: a death noticed (the pidfd's completion in
		 * the io_uring, read only while no reaper sleeps in the ring:
		 * uring_busy 0; it stays there, so the ring's sleeper wakes
		 * on it and handles it once it is back under cons_lock) */
		if
		:: dead && !uring_busy ->
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
					/* completes with an error; out of the record
					 * (pool_complete_synthetic) */
					atomic { id = rec[rec_head % DEPTH]; DELIVER(id); id = 0 };
					rec_head++;
					WAKE_REAPERS
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
			/* the promptness check: held back, maybe */
			do
			:: FROZEN -> (!FROZEN)
			:: atomic {
				assert(inflight >= got);  /* never borrows */
				inflight = inflight - got;
				ndelivered = ndelivered + got;
				GAP_HINT
			   }; break
			od;
			/* room freed (SPACE_NEED 1: always enough, else the
			 * gap); with the hint 1, pool_take_pending says
			 * whether to wake */
			if
			NO_GAP
			:: GAP wk -> GAP_CLR wk = 0; WAKE_PRODUCERS
			:: else ->
				GAP_CLR
				TAKE_PENDING;
				if
				:: wk -> wk = 0; WAKE_PRODUCERS
				:: else -> skip
				fi
			fi;
			atomic {                          /* advance_head */
				res_rel = res_rel + rel;
				assert(res_rel <= res_end);
				got = 0; rel = 0
			};
			WAKE_WORKER(space_sl, space_gn, cons_space_last)
		:: else -> REAP_SLEEP
		fi
	od;
	/* the last reaper: every task delivered exactly once; counts back to
	 * rest; the record empty */
	atomic {
		FINAL_WAIT
		assert(P_FAILED || inflight == 0);
		assert(P_FAILED || (rec_head == sq_tail && pub_tail == sq_tail));
		assert(P_FAILED || ndelivered == sq_tail);
		rdone++;
		assert(rdone < NREAP || cq_sl == 0);
		CUNLOCK
	}
}

#ifdef STOP_ANY
/* pool_wake_reapers, pool_wake_producers: bump, FUTEX_WAKE all, a byte */
#define POOL_WAKE_REAPERS                                                 \
	atomic { cq_seq++; cq_fq = 0; POKE(cq_pipe); reap_woke = 1 }
#define POOL_WAKE_PRODUCERS                                               \
	atomic { space_seq++; ps_fq = 0; POKE(space_pipe) }
#ifdef MUT_NOSTOPWAKE
#define STOP_WAKE_PRODUCERS skip                 /* MUTANT */
#else
#define STOP_WAKE_PRODUCERS POOL_WAKE_PRODUCERS
#endif
#ifdef MUT_NOSTOPREAPWAKE
#define STOP_WAKE_REAPERS skip                   /* MUTANT */
#else
#define STOP_WAKE_REAPERS POOL_WAKE_REAPERS
#endif
#ifdef MUT_NOFAILWAKE
#define FAIL_WAKE_PRODUCERS skip                 /* MUTANT */
#else
#define FAIL_WAKE_PRODUCERS POOL_WAKE_PRODUCERS
#endif

/* The application's other thread, at any moment: arena_pool_stop (drain):
 * stopped under prod_lock; ctl.stop and every worker woken (cons_lock;
 * not modelled: one reaper, no deaths); pool_supervise until every worker
 * is gone; then the final wakes.  FAIL_ANY: or pool_fail (failed, then
 * the producers' and the reapers' wakes); the application then destroys
 * the pool once its threads returned (the worker killed). */
active proctype Ender()
{
	if
	:: atomic { prod_lock == 0 -> p_stopped = 1 };
		atomic { stop = 1; wake_seq++ };
		(wstarted && !alive && !dead);
		STOP_WAKE_REAPERS;
		STOP_WAKE_PRODUCERS
#ifdef FAIL_ANY
	:: p_failed = 1;
		FAIL_WAKE_PRODUCERS;
		POOL_WAKE_REAPERS;
		(pdone == NPROD && rdone == NREAP);
		atomic { if :: alive -> kill = 1 :: else -> skip fi }
#endif
	fi
}
#endif

/* counts never borrow or overflow: the worker's counts are 0 or 1 (one
 * sleeper per word); the pipe words' counts are at most one owner (1) plus
 * one futex sleeper (2); generations far from wrapping. */
#define BOUNDED (wake_sl <= 1 && space_sl <= 1 && \
		 ps_sl <= 2 * NPROD && cq_sl <= 2 * NREAP - 1 && \
		 wake_gn < 250 && cq_gn < 250 && ps_gn < 250)
active proctype Invariants()
{
end:	do
	:: atomic { !BOUNDED -> assert(BOUNDED) }
	od
}
