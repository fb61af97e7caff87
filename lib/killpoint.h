/* SPDX-License-Identifier: MIT */
/*
 * Kill points: a test build of the library (-DARENA_KILLPOINTS, built only
 * under build/kp/ by mk/killpoint.mk, never in the shipped library) where
 * the worker SIGKILLs itself at one named point of its write order
 * (channel.h), chosen by the environment:
 *
 *   ARENA_KILLPOINT=<point>   taken, inhand, result, cqe, cq_tail, retry,
 *                             space
 *
 * Which tasks die there, by user_data (the test knows which to expect):
 *   user_data % 7 == 0   "deadly": every attempt dies, so the task must
 *                        complete with -EOWNERDEAD after max_attempts kills;
 *   user_data % 7 == 3   "once": it dies there the first time only (for
 *                        `retry`: its first two runs, the second inside the
 *                        retry path), so it must be delivered once, with the
 *                        right bytes.  "First" is remembered across
 *                        incarnations by files in $ARENA_KILLPOINT_DIR;
 *   otherwise            never killed.
 * At `taken` no task is deadly: before inhand is published the parent cannot
 * tell which task killed the worker, so it runs it again uncharged.
 * Without ARENA_KILLPOINTS every KILLPOINT() is empty.
 */
#ifndef ARENA_KILLPOINT_H
#define ARENA_KILLPOINT_H

enum {
	KP_NONE,
	KP_TAKEN,        /* task copied out of the SQ, inhand not yet written */
	KP_AFTER_INHAND, /* inhand_valid = 1, sq_head not yet moved */
	KP_AFTER_RESULT, /* result bytes written, no CQE yet */
	KP_AFTER_CQE,    /* CQE written, cq_tail not yet moved */
	KP_AFTER_CQ_TAIL,/* cq_tail published, inhand_valid not yet cleared */
	KP_RETRY,        /* a task that already killed a worker, taken again */
	KP_SPACE_WAIT,   /* announced on space_ann, about to sleep for space */
	KP_COUNT
};

#include <stdint.h>
#include <stdlib.h>

#ifdef ARENA_KILLPOINTS
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"

static inline int killpoint_chosen(void)
{
	static const char *const names[KP_COUNT] = {
		"", "taken", "inhand", "result", "cqe", "cq_tail", "retry", "space"
	};
	static int chosen = -1;
	const char *e;
	int i;

	if (chosen >= 0)
		return chosen;
	chosen = KP_NONE;
	e = getenv("ARENA_KILLPOINT");
	for (i = 1; e && i < KP_COUNT; i++)
		if (!strcmp(e, names[i]))
			chosen = i;
	return chosen;
}

/* First time this worker family reaches `tag` for task seq: a file made
 * with O_EXCL in $ARENA_KILLPOINT_DIR remembers it across incarnations. */
static inline int killpoint_first(uint64_t seq, char tag)
{
	const char *d = getenv("ARENA_KILLPOINT_DIR");
	char path[512];
	int fd;

	if (!d)
		return 0;
	snprintf(path, sizeof(path), "%s/kp-%llu-%c", d, (unsigned long long)seq, tag);
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* One line "<seq>" per death in $ARENA_KILLPOINT_DIR/kills (the test
 * counts each task's deaths). */
static inline void killpoint_log(uint64_t seq)
{
	const char *d = getenv("ARENA_KILLPOINT_DIR");
	char path[512];
	int fd;

	if (!d)
		return;
	snprintf(path, sizeof(path), "%s/kills", d);
	fd = open(path, O_CREAT | O_APPEND | O_WRONLY | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dprintf(fd, "%llu\n", (unsigned long long)seq);
		close(fd);
	}
}

static inline void killpoint_hit(int kp, const volatile struct chan_sqe *task)
{
	int want = killpoint_chosen(), deadly;
	uint64_t ud = task->user_data, seq = task->seq;
	uint32_t att = task->attempts;

	if (want == KP_NONE || (ud % 7 != 0 && ud % 7 != 3))
		return;
	/* Before inhand is published a death cannot be charged to the task
	 * (it runs again without an attempt): no task is deadly there. */
	deadly = ud % 7 == 0 && want != KP_TAKEN;
	if (want == KP_RETRY) {
		/* First death just after taking it, the next ones inside the
		 * retry path (a task that already killed a worker). */
		if (kp == KP_AFTER_INHAND && att == 0) {
			if (!deadly && !killpoint_first(seq, 'a'))
				return;
		} else if (kp == KP_RETRY && att > 0) {
			if (!deadly && !killpoint_first(seq, 'b'))
				return;
		} else {
			return;
		}
	} else if (kp != want || (!deadly && !killpoint_first(seq, 'a'))) {
		return;
	}
	killpoint_log(seq);
	kill(getpid(), SIGKILL);
	for (;;)
		pause();
}

#define KILLPOINT(kp, task) killpoint_hit((kp), (task))
#else
#define KILLPOINT(kp, task) ((void)0)
#endif

/*
 * ARENA_TEST_NO_POLL=1 (kill-point builds only): no timed look hides a lost
 * wake-up.  The reaper sleeps for its caller's whole timeout (no look for
 * unsignaled completions (sys_look_ns), no supervision tick), a worker's idle check
 * takes 60 s instead of 250 ms; a lost wake-up then shows as a hang.
 */
#ifdef ARENA_KILLPOINTS
static inline int kp_no_poll(void)
{
	static int v = -1;

	if (v < 0) {
		const char *e = getenv("ARENA_TEST_NO_POLL");

		v = e && e[0] == '1';
	}
	return v;
}
/* The poll period `t` chosen, or the caller's timeout without polls. */
#define KP_NO_POLL(t, caller) (kp_no_poll() ? (caller) : (t))
#else
#define KP_NO_POLL(t, caller) (t)
#endif

/*
 * ARENA_TEST_WIDEN=1 (kill-point builds only): a sleeper pauses ~20 us after
 * its announcement and fence (evc_prepare), and a waker ~20 us between its
 * publication and its look at the announcement (evc_wake), widening the
 * window in which a late waker sees an announcement before the sleeper
 * goes on.  With the value to
 * sleep on read after that window (evc.h before the Spin model's finding)
 * the lost wake-up shows within seconds; read before it, nothing changes.
 */
#ifdef ARENA_KILLPOINTS
#include <time.h>
static inline void kp_widen(void)
{
	static int v = -1;
	struct timespec t0, t;

	if (v < 0) {
		const char *e = getenv("ARENA_TEST_WIDEN");

		v = e && e[0] == '1';
	}
	if (!v)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000000l + t.tv_nsec - t0.tv_nsec < 20000);
}
#define KP_WIDEN() kp_widen()
#else
#define KP_WIDEN() ((void)0)
#endif

#endif
