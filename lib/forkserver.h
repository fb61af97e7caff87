/* SPDX-License-Identifier: MIT */
/*
 * The fork server: the one place every worker starts from.
 *
 * arena_pool_create forks it once (before the caller starts threads), after
 * the channel exists and before the supervisor's io_uring does.  It is
 * single-threaded and never changes its memory after that, so every worker,
 * first or replacement, starts from the same state: no other thread's locks,
 * no stdio in mid-flight, the interpreter state a binding prepared around
 * arena_pool_create.  It starts a worker with clone3(CLONE_PARENT |
 * CLONE_PIDFD): the pool's process is the worker's parent (waitid and pidfd
 * supervision stay there) and the pidfd comes back over a socketpair with
 * SCM_RIGHTS, so no pid can be recycled in between.
 *
 * The parent treats the server as untrusted input: a request has a bounded
 * wait (FSRV_TIMEOUT_MS), the answer's size, sequence number and fd count are
 * checked, and the worker's pid is read from the kernel (the pidfd's fdinfo),
 * not from the answer.  The answer's pid serves when the kernel dropped the
 * pidfd (another thread of ours took the last free fd as it came): that
 * worker, our unreaped child, is killed and reaped by pid and the start
 * fails with -EMFILE; the server serves on.  A server that dies, hangs or
 * answers garbage is killed and marked dead: later starts fail with -EPIPE
 * (the slot's tasks go to the survivors, or complete with -ECHILD), running
 * workers go on.
 */
#ifndef ARENA_FORKSERVER_H
#define ARENA_FORKSERVER_H

#include <sys/types.h>

#include "sys.h"

#define FSRV_TIMEOUT_MS 5000   /* longest wait for one answer */

struct arena_pool;

struct fsrv {
	pid_t pid;
	int pidfd;      /* the server's, -1 when none */
	int sock;       /* our end of the socketpair, -1 when none */
	int dead;       /* it died or misbehaved: no more starts */
	uint32_t seq;   /* request number, echoed in the answer */
};

/* Forks the server (p fully set up but for the io_uring).  0 or -errno. */
ARENA_HIDDEN int fsrv_start(struct arena_pool *p);
/* Asks for worker i; *pidfd and *pid on success.  -EPIPE (server dead),
 * -ETIMEDOUT, -EBADMSG (garbage answer), -EMFILE (no fd for the pidfd: no
 * worker left running), or the clone's error (-EAGAIN...). */
ARENA_HIDDEN int fsrv_spawn(struct arena_pool *p, unsigned i, int *pidfd, pid_t *pid);
/* Tells the server to exit and reaps it. */
ARENA_HIDDEN void fsrv_stop(struct fsrv *s);

#endif
