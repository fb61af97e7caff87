/* SPDX-License-Identifier: MIT */
/*
 * Eventcount: sleeping on a futex without losing a wake-up, and waking only
 * when someone announced that it sleeps, once per announcement.
 *
 * Each place where a side may sleep has a 32-bit `seq` (the futex word) and
 * a 64-bit announcement word `ann` (low 16 bits: sleepers announced now;
 * high 48 bits: a generation, +1 on every announcement), on cache lines of
 * their own.
 *
 *   sleeper                               waker
 *   -------                               -----
 *   v = seq      (acquire)  (S0)
 *   ann += 1 sleeper, 1 gen  (S1)         publish work (release)   (W1)
 *   fence(seq_cst)                        fence(seq_cst)
 *   check for work           (S2)         a = ann                  (W2)
 *   if work: done, return                 if sleepers(a) > 0 and
 *   FUTEX_WAIT(&seq, v)                      gen(a) != gen we woke last:
 *   done (sleepers -= 1), check again          seq += 1 (release)  (W3)
 *                                              FUTEX_WAKE(&seq)
 *
 * Why no wake-up is lost: S1/W1 are stores followed, after a full fence, by
 * loads of the other side's store (Dekker).  So either the sleeper's check of
 * the work sees W1, or the waker's W2 sees S1 (or both); an acquire/release
 * pair alone would allow both to miss.  When the waker sees the sleeper it
 * bumps seq (W3) after W2.  S0 cannot have read that bump (S0 precedes S1,
 * which W2 read, which precedes W3), so the sleeper waits on an older value:
 * FUTEX_WAIT either finds seq changed (returns EAGAIN at once) or is queued
 * before W3's FUTEX_WAKE, which then wakes it.  EINTR, EAGAIN, timeouts and
 * spurious wake-ups all mean "check again", after a new announcement.
 *
 * Why a waker may skip a generation it already woke (so that a sleeper slow
 * to get a CPU does not collect one FUTEX_WAKE per batch from every waker):
 * its earlier W3 bumped seq after it saw every announcement up to that
 * generation; by the argument above each of those sleepers waits on a value
 * older than that bump (S0), so its FUTEX_WAIT returns (n covers every
 * sleeper that can share the word).  None can go back to sleep without
 * announcing again, which changes the generation.  A waker that still reads
 * the same generation has therefore not seen any later announcement, and
 * Dekker again says that announcement's sleeper sees the new work.
 *
 * This needs: (1) every change that can satisfy a sleeper is followed by a
 * wake check; (2) each *last belongs to one waker, serialized with that
 * waker's publications (a word several wakers share is only a claim, next
 * to each one's own *last: evc_wake_fd_shared); (3) the generation only grows between two reads of
 * one waker, so whoever resets or reuses a word (a replaced worker's)
 * resets every *last for it to EVC_NONE, and a side whose word others could
 * scribble on keeps its own copy (evc_prepare_owned).  A sleeper in io_uring
 * may stay queued on an old value across several announcements; any later
 * FUTEX_WAKE still reaches it.  48 bits of generation do not wrap in
 * practice: 9 years at one announcement a microsecond.
 *
 * `private_` selects FUTEX_PRIVATE_FLAG; only for words in process-private
 * memory (the producer's backpressure word).  Words in the channel are
 * shared between processes and never private.
 */
#ifndef ARENA_EVC_H
#define ARENA_EVC_H

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>

#include "killpoint.h"
#include "sys.h"

#define EVC_SLEEPER 1ull           /* low 16 bits: sleepers announced */
#define EVC_GEN (1ull << 16)       /* high 48 bits: announcements made */
#define EVC_NONE UINT64_MAX        /* a waker's *last before it woke anyone:
				      no 48-bit generation equals it */

static inline uint32_t evc_sleepers(uint64_t ann)
{
	return (uint32_t)(ann & (EVC_GEN - 1));
}

/*
 * Sleeper, step 1: announce, then return the value to wait on.  That value is
 * read BEFORE the announcement (S0): a waker that saw the announcement bumps
 * seq after it, so FUTEX_WAIT on the earlier value returns at once or is
 * woken.  Read after the announcement (as before), it could already include
 * such a bump: the waker then counts this generation as woken while the
 * sleeper, finding nothing (it had taken the work that wake was for),
 * sleeps on the bumped value, and the waker's next wake is skipped as
 * "already woken".  A lost wake-up, found by the Spin model
 * (tests/model/pool.pml, mutant MUT_LATEV).
 */
static inline uint32_t evc_prepare_w(_Atomic uint64_t *ann, _Atomic uint32_t *seq,
				     uint32_t weight)
{
	/* acquire: pairs with the waker's release increment (W3); also keeps
	 * this load before the announcement below (no later access moves
	 * above an acquire load). */
	uint32_t v = atomic_load_explicit(seq, memory_order_acquire);

	/* relaxed: the fence below orders it before the caller's re-check. */
	atomic_fetch_add_explicit(ann, weight * EVC_SLEEPER + EVC_GEN, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	KP_WIDEN();
	return v;
}

static inline uint32_t evc_prepare(_Atomic uint64_t *ann, _Atomic uint32_t *seq)
{
	return evc_prepare_w(ann, seq, 1);
}

/* Sleeper, last step (after waking or when work was found). */
static inline void evc_done_w(_Atomic uint64_t *ann, uint32_t weight)
{
	/* relaxed: a stale count only costs the waker one spare FUTEX_WAKE. */
	atomic_fetch_sub_explicit(ann, weight * EVC_SLEEPER, memory_order_relaxed);
}

static inline void evc_done(_Atomic uint64_t *ann)
{
	evc_done_w(ann, 1);
}

/*
 * The same two steps for a side that announces only under one lock of its
 * own and whose word others could scribble on (the reapers' word in the
 * channel): the word lives in *own and is published whole.  A garbage value
 * lasts only until the next announcement and never makes the count borrow
 * from the generation.  Store, fence, load: the same Dekker pattern.
 */
static inline uint32_t evc_prepare_owned(_Atomic uint64_t *ann, uint64_t *own,
					 _Atomic uint32_t *seq, uint32_t weight)
{
	/* acquire: as in evc_prepare, read before the announcement. */
	uint32_t v = atomic_load_explicit(seq, memory_order_acquire);

	*own += weight * EVC_SLEEPER + EVC_GEN;
	atomic_store_explicit(ann, *own, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	KP_WIDEN();
	return v;
}

static inline void evc_done_owned(_Atomic uint64_t *ann, uint64_t *own, uint32_t weight)
{
	*own -= weight * EVC_SLEEPER;
	atomic_store_explicit(ann, *own, memory_order_relaxed);
}

/* Sleeper, step 2: sleep while seq == v.  Returns 0, -ETIMEDOUT, or -EAGAIN/
 * -EINTR (both mean "check again"). */
static inline int evc_sleep(_Atomic uint32_t *seq, uint32_t v, int64_t timeout_ns,
			    int private_)
{
	return sys_futex_wait((uint32_t *)seq, v, timeout_ns, private_);
}

/*
 * Waker, after the fence: the decision.  When someone announced itself in a
 * generation this waker has not woken yet, bumps seq (W3) and returns the
 * sleepers announced; 0 when the wake-up is skipped.  *last is the waker's
 * own memory of that generation (one per waker; NULL: always wake).
 */
static inline uint32_t evc_bump_fenced_w(_Atomic uint64_t *ann, uint64_t *last,
					 _Atomic uint64_t *woken, _Atomic uint32_t *seq)
{
	uint64_t a = atomic_load_explicit(ann, memory_order_relaxed);
	uint32_t sleepers = evc_sleepers(a);
	uint64_t gen = a / EVC_GEN;

	if (!sleepers)
		return 0;
	if (last && *last == gen)
		return 0;
	/* The claim (evc_wake_fd_shared), for a sleep the pipe's owner is
	 * counted in.  relaxed: only the value matters; nothing is published
	 * through the word. */
	if (woken && (sleepers & 1) &&
	    atomic_exchange_explicit(woken, gen, memory_order_relaxed) == gen)
		return 0;
	if (last)
		*last = gen;
	/* release: a sleeper that reads the new value sees the work (W1). */
	atomic_fetch_add_explicit(seq, 1, memory_order_release);
	return sleepers;
}

static inline uint32_t evc_bump_fenced(_Atomic uint64_t *ann, uint64_t *last,
				       _Atomic uint32_t *seq)
{
	return evc_bump_fenced_w(ann, last, NULL, seq);
}

/* The same, then FUTEX_WAKE of up to n sleepers.  Returns 1 when it made
 * the call, 0 when it was skipped. */
static inline int evc_wake_fenced(_Atomic uint64_t *ann, uint64_t *last,
				  _Atomic uint32_t *seq, int n, int private_)
{
	if (!evc_bump_fenced(ann, last, seq))
		return 0;
	sys_futex_wake((uint32_t *)seq, n, private_);
	return 1;
}

/* Waker: the full fence, then the decision. */
static inline int evc_wake(_Atomic uint64_t *ann, uint64_t *last, _Atomic uint32_t *seq,
			   int n, int private_)
{
	KP_WIDEN();
	atomic_thread_fence(memory_order_seq_cst);
	return evc_wake_fenced(ann, last, seq, n, private_);
}

/*
 * The same for a sleeper that waits in poll() on a pipe instead of on the
 * futex (the reapers with forked workers, pool_internal.h wake_r; the
 * producers, space_r): the byte
 * is written after the bump (W3), so a sleeper that announced itself finds
 * it whenever it polls, like FUTEX_WAIT finds seq changed; it re-reads seq
 * before polling.  A pipe write is a "sync" wake-up: the kernel puts the
 * sleeper on the waker's CPU.  A full pipe (EAGAIN) holds a wake-up already.
 * One sleeper at a time sleeps on the pipe, announced with weight 1; others
 * sleep on the futex, announced with weight 2 (reap.c, submit.c): an odd count means
 * the pipe's sleeper is there, 2 or more that futex sleepers are.  (Two
 * sleepers on one pipe could lose a wake-up: one drains the byte the other,
 * between its seq check and its poll, was woken by.)
 *
 * evc_wake_fd_shared: evc_wake_fd for wakers that share one word `woken` (the
 * workers waking the consumer), each with its own *last too.  A waker that
 * decides to wake a generation first claims it: it exchanges the generation
 * into `woken`; if the word held it already, another waker claimed that
 * sleep, and this one skips it as it would skip a generation it woke
 * itself, leaving its own *last alone.  By the argument above, the sleeper,
 * woken by the claimant, goes back to sleep only after announcing a new
 * generation, and then sees this waker's work.  So a sleep gets one wake-up
 * call from all the workers, not one from each: with two workers at depth
 * 10, 0.19 calls a task for 0.12 sleeps before (README, session 13).
 * Verified with two and three wakers live at once and both kinds of sleeper
 * by tests/model/evc.pml (SHARED_WOKEN).  Claimed before the calls, not
 * recorded after them: recorded after, two wakers still both woke most
 * sleeps, since the first one's pipe write runs the consumer on its own CPU
 * before it gets to the store.  Only sleeps that the pipe's owner is
 * counted in (an odd count: the reaper sleeps on the pipe while tasks are
 * long) are claimed.  With the consumer asleep on the futex (tiny tasks), a
 * second waker's bump made the consumer's next FUTEX_WAIT return at once,
 * and without it the consumer slept more often: ring-bench's tiny 2-worker
 * depth-10 two-thread row, 10 alternated runs, medians: with every sleep
 * claimed 0.014 consumer sleeps a task and 0.65 us a task, against 0.008
 * and 0.50 without the word.  A claimant that dies before its calls leaves
 * that sleep to the sleeper's watch on the workers and its timeout,
 * as a worker that dies before it signals its completions does.  A
 * scribbled word can make wakers skip a sleep, with the same bound, as a
 * scribbled `ann` can.
 */
static inline int evc_wake_fd_shared(_Atomic uint64_t *ann, uint64_t *last,
				     _Atomic uint64_t *woken, _Atomic uint32_t *seq, int fd,
				     int private_)
{
	uint32_t sleepers;

	KP_WIDEN();
	atomic_thread_fence(memory_order_seq_cst);
	sleepers = evc_bump_fenced_w(ann, last, woken, seq);
	if (!sleepers)
		return 0;
	if (sleepers & 1)
		sys_poke(fd);
	if (sleepers >= 2)
		sys_futex_wake((uint32_t *)seq, INT_MAX, private_);
	return 1;
}

static inline int evc_wake_fd(_Atomic uint64_t *ann, uint64_t *last, _Atomic uint32_t *seq,
			      int fd, int private_)
{
	return evc_wake_fd_shared(ann, last, NULL, seq, fd, private_);
}

/*
 * The pipe's sleeper, in place of evc_sleep: polls fd (and fd2, unless -1)
 * while seq == v, then drains fd.  The byte is what keeps a wake-up: it is
 * written after the bump, the poll is level-triggered, and only this sleeper
 * drains it, after its poll.  Reading seq first (FUTEX_WAIT's compare) only
 * saves a poll when a waker already bumped it; the Spin model verifies the
 * protocol without it (tests/model/README.md, "noreread").  A stale byte
 * only makes a later sleep return early, to check again.
 */
static inline int evc_sleep_fd(_Atomic uint32_t *seq, uint32_t v, int fd, int fd2,
			       int64_t timeout_ns)
{
	int r = 0;

	/* acquire: as FUTEX_WAIT's compare (W3's release). */
	if (atomic_load_explicit(seq, memory_order_acquire) == v)
		r = sys_poll_in(fd, fd2, timeout_ns);
	sys_drain(fd);
	return r;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

/*
 * Spinning before sleeping pays only for a side that has a CPU of its own:
 * take a spinner slot only while fewer than CPUs - 1 spin (policy AUTO).
 * Returns 1 when the caller may spin (and must call spin_leave()).
 */
static inline int spin_enter(_Atomic uint32_t *spinners, uint32_t policy, uint32_t ncpu)
{
	uint32_t cur;

	if (policy == 1 /* ARENA_SPIN_NEVER */)
		return 0;
	if (policy == 2 /* ARENA_SPIN_ALWAYS */) {
		atomic_fetch_add_explicit(spinners, 1, memory_order_relaxed);
		return 1;
	}
	cur = atomic_load_explicit(spinners, memory_order_relaxed);
	do {
		if (cur + 1 >= ncpu)
			return 0;
		/* relaxed: the count is a hint; nothing is published through it. */
	} while (!atomic_compare_exchange_weak_explicit(spinners, &cur, cur + 1,
							memory_order_relaxed,
							memory_order_relaxed));
	return 1;
}

/* Never below zero: the parent resets the count to 0 when a worker dies
 * mid-spin, and a spinner that leaves after that must not wrap it. */
static inline void spin_leave(_Atomic uint32_t *spinners)
{
	uint32_t cur = atomic_load_explicit(spinners, memory_order_relaxed);

	/* relaxed: the count is a hint (spin_enter). */
	while (cur && !atomic_compare_exchange_weak_explicit(spinners, &cur, cur - 1,
							     memory_order_relaxed,
							     memory_order_relaxed))
		;
}

#endif
