/* SPDX-License-Identifier: MIT */
/*
 * Eventcount: sleeping on a futex without losing a wake-up, and waking only
 * when someone announced that it sleeps.
 *
 * Each place where a side may sleep has a 32-bit `seq` (the futex word) and a
 * `waiters` count, on cache lines of their own.
 *
 *   sleeper                               waker
 *   -------                               -----
 *   waiters += 1            (S1)          publish work (release)   (W1)
 *   fence(seq_cst)                        fence(seq_cst)
 *   v = seq      (acquire)  (S2)          if waiters > 0:          (W2)
 *   if work: waiters -= 1, return             seq += 1 (release)   (W3)
 *   FUTEX_WAIT(&seq, v)                       FUTEX_WAKE(&seq)
 *   waiters -= 1, check again
 *
 * Why no wake-up is lost: S1/W1 are stores followed, after a full fence, by
 * loads of the other side's store (Dekker).  So either the sleeper's check of
 * the work sees W1, or the waker's W2 sees S1 (or both); an acquire/release
 * pair alone would allow both to miss.  When the waker sees the sleeper it
 * bumps seq after W1.  If the sleeper's S2 read the bumped value, S2
 * synchronizes with W3 and the work check after S2 sees W1.  Otherwise the
 * sleeper waits on the old value: FUTEX_WAIT either finds seq changed
 * (returns EAGAIN at once) or is queued before W3's FUTEX_WAKE, which then
 * wakes it.  EINTR, EAGAIN, timeouts and spurious wake-ups all mean "check
 * again".  The waker skips the system call when nobody announced itself,
 * which is the common case on a busy pool.
 *
 * `private_` selects FUTEX_PRIVATE_FLAG; only for words in process-private
 * memory (the producer's backpressure word).  Words in the channel are
 * shared between processes and never private.
 */
#ifndef ARENA_EVC_H
#define ARENA_EVC_H

#include <stdatomic.h>
#include <stdint.h>

#include "sys.h"

/* Sleeper, step 1: announce, then return the value to wait on. */
static inline uint32_t evc_prepare(_Atomic uint32_t *waiters, _Atomic uint32_t *seq)
{
	/* relaxed: the fence below orders it before the caller's re-check. */
	atomic_fetch_add_explicit(waiters, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	/* acquire: pairs with the waker's release increment (W3). */
	return atomic_load_explicit(seq, memory_order_acquire);
}

/* Sleeper, last step (after waking or when work was found). */
static inline void evc_done(_Atomic uint32_t *waiters)
{
	/* relaxed: a stale count only costs the waker one spare FUTEX_WAKE. */
	atomic_fetch_sub_explicit(waiters, 1, memory_order_relaxed);
}

/* Sleeper, step 2: sleep while seq == v.  Returns 0, -ETIMEDOUT, or -EAGAIN/
 * -EINTR (both mean "check again"). */
static inline int evc_sleep(_Atomic uint32_t *seq, uint32_t v, int64_t timeout_ns,
			    int private_)
{
	return sys_futex_wait((uint32_t *)seq, v, timeout_ns, private_);
}

/* Waker, after the fence: wakes if someone announced itself.  Returns 1 when
 * it made the FUTEX_WAKE call, 0 when it was skipped. */
static inline int evc_wake_fenced(_Atomic uint32_t *waiters, _Atomic uint32_t *seq,
				  int n, int private_)
{
	if (atomic_load_explicit(waiters, memory_order_relaxed) == 0)
		return 0;
	/* release: a sleeper that reads the new value sees the work (W1). */
	atomic_fetch_add_explicit(seq, 1, memory_order_release);
	sys_futex_wake((uint32_t *)seq, n, private_);
	return 1;
}

/* Waker: the full fence, then the decision. */
static inline int evc_wake(_Atomic uint32_t *waiters, _Atomic uint32_t *seq, int n,
			   int private_)
{
	atomic_thread_fence(memory_order_seq_cst);
	return evc_wake_fenced(waiters, seq, n, private_);
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

static inline void spin_leave(_Atomic uint32_t *spinners)
{
	atomic_fetch_sub_explicit(spinners, 1, memory_order_relaxed);
}

#endif
