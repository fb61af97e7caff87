/* SPDX-License-Identifier: MIT */
/* The io_uring half of supervision (see uring.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "uring.h"

#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51     /* Linux 6.7 */
#endif
#define ARENA_FUTEX2_SIZE_U32 0x02  /* futex2 flags: 32-bit word, shared */
#define ARENA_FUTEX_BITSET_ANY 0xffffffffull

int sup_uring_init(struct sup_uring *u, unsigned entries)
{
	struct io_uring_probe *probe;
	const char *env = getenv("ARENA_NO_URING");
	int r;

	memset(u, 0, sizeof(*u));
	if (env && *env && strcmp(env, "0"))
		return -ENOSYS;
	r = io_uring_queue_init(entries, &u->ring, 0);
	if (r < 0)
		return r; /* EPERM (seccomp, io_uring_disabled), ENOSYS, ENOMEM */
	probe = io_uring_get_probe_ring(&u->ring);
	if (!probe || !io_uring_opcode_supported(probe, IORING_OP_POLL_ADD)) {
		if (probe)
			io_uring_free_probe(probe);
		io_uring_queue_exit(&u->ring);
		return -EOPNOTSUPP;
	}
	u->futex_ok = io_uring_opcode_supported(probe, IORING_OP_FUTEX_WAIT);
	io_uring_free_probe(probe);
	/* Children the application forks later do not map our rings (the
	 * workers never do: they start from the fork server, forked before
	 * the ring existed).  The ring fd itself is close-on-exec. */
	r = io_uring_ring_dontfork(&u->ring);
	if (r < 0) {
		io_uring_queue_exit(&u->ring);
		return r;
	}
	u->ok = 1;
	return 0;
}

void sup_uring_exit(struct sup_uring *u)
{
	if (u->ok)
		io_uring_queue_exit(&u->ring);
	u->ok = 0;
}

static struct io_uring_sqe *get_sqe(struct sup_uring *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (!sqe) {
		/* The SQ is full of queued watches: send them first. */
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

int sup_uring_watch_pidfd(struct sup_uring *u, int pidfd, uint64_t tag)
{
	struct io_uring_sqe *sqe = get_sqe(u);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, pidfd, POLLIN);
	io_uring_sqe_set_data64(sqe, URING_TAG_PIDFD | tag);
	return 0;
}

int sup_uring_arm_futex(struct sup_uring *u, uint32_t *word, uint32_t val)
{
	struct io_uring_sqe *sqe;

	if (u->futex_armed)
		return 0;
	sqe = get_sqe(u);
	if (!sqe)
		return -EBUSY;
	/* What liburing >= 2.5's io_uring_prep_futex_wait() fills in: fd holds
	 * the futex2 flags (no FUTEX2_PRIVATE: the word is shared between
	 * processes), addr the word, off the expected value, addr3 the mask. */
	io_uring_prep_rw(IORING_OP_FUTEX_WAIT, sqe, ARENA_FUTEX2_SIZE_U32, word, 0, val);
	sqe->addr3 = ARENA_FUTEX_BITSET_ANY;
	io_uring_sqe_set_data64(sqe, URING_TAG_FUTEX);
	u->futex_armed = 1;
	return 0;
}

int sup_uring_wait(struct sup_uring *u, int64_t timeout_ns)
{
	struct __kernel_timespec ts, *tp = NULL;
	struct io_uring_cqe *cqe;
	int r;

	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tp = &ts;
	}
	r = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, tp, NULL);
	if (r == -ETIME)
		r = -ETIMEDOUT;
	return r < 0 ? r : 0;
}

int sup_uring_flush(struct sup_uring *u)
{
	int r = io_uring_submit(&u->ring);

	return r < 0 ? r : 0;
}

int sup_uring_next(struct sup_uring *u, uint64_t *tag, int32_t *res)
{
	struct io_uring_cqe *cqe;

	if (io_uring_peek_cqe(&u->ring, &cqe) != 0 || !cqe)
		return 0;
	*tag = io_uring_cqe_get_data64(cqe);
	*res = cqe->res;
	io_uring_cqe_seen(&u->ring, cqe);
	if (*tag == URING_TAG_FUTEX)
		u->futex_armed = 0;
	return 1;
}
