/* SPDX-License-Identifier: MIT */
/* The io_uring half of supervision (see uring.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "uring.h"

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
	return 1;
}
