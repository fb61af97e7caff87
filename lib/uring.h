/* SPDX-License-Identifier: MIT */
/*
 * io_uring for the consumer's sleep: the ring holds a poll for each worker's
 * death (IORING_OP_POLL_ADD on its pidfd), so that one sleep sees a
 * completion or any worker's death: ppoll() on the ring's fd and the
 * reapers' wake pipe while tasks are long, one io_uring_enter with an
 * IORING_OP_FUTEX_WAIT on the CQ eventcount word while they are short
 * (supervise.c pool_consumer_sleep; Debian's liburing 2.3 has no futex
 * helpers, so that entry is filled by hand).  When io_uring is missing or
 * disabled (EPERM/ENOSYS, ARENA_NO_URING=1), `ok` is 0 and the pool falls
 * back to timed sleeps plus pidfd polls.
 */
#ifndef ARENA_URING_H
#define ARENA_URING_H

#include <stdint.h>
#include <liburing.h>

#include "sys.h"

#define URING_TAG_FUTEX 0xF0000000ull
#define URING_TAG_PIDFD 0xE0000000ull

struct sup_uring {
	struct io_uring ring;
	int ok;             /* ring usable */
	int futex_ok;       /* kernel has IORING_OP_FUTEX_WAIT */
	int futex_armed;    /* a FUTEX_WAIT is queued in the kernel */
};

/* Returns 0, or -errno when io_uring is unavailable (ok stays 0). */
ARENA_HIDDEN int sup_uring_init(struct sup_uring *u, unsigned entries);
ARENA_HIDDEN void sup_uring_exit(struct sup_uring *u);
/* Queues a poll for a worker's death; sent with the next wait. */
ARENA_HIDDEN int sup_uring_watch_pidfd(struct sup_uring *u, int pidfd, uint64_t tag);
/* Queues FUTEX_WAIT(word, val) unless one is armed. */
ARENA_HIDDEN int sup_uring_arm_futex(struct sup_uring *u, uint32_t *word, uint32_t val);
/* Submits what is queued and waits for one event or the timeout (< 0 none). */
ARENA_HIDDEN int sup_uring_wait(struct sup_uring *u, int64_t timeout_ns);
/* Submits what is queued without waiting. */
ARENA_HIDDEN int sup_uring_flush(struct sup_uring *u);
/* Pops one event: returns 1 with the tag and result, 0 when none.  No system call. */
ARENA_HIDDEN int sup_uring_next(struct sup_uring *u, uint64_t *tag, int32_t *res);

#endif
