/* SPDX-License-Identifier: MIT */
/*
 * libarena_mpi internals: the state behind struct arena_mpi, bounded waits on
 * MPI requests, the node's peers (pidfds), and the test-only fault points.
 */
#ifndef ARENA_MPI_INTERNAL_H
#define ARENA_MPI_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "arena_mpi.h"

#define MPI_HIDDEN __attribute__((visibility("hidden")))

#define MPI_DEFAULT_TIMEOUT_NS (120ull * 1000000000ull)

struct arena_mpi {
	MPI_Comm comm;            /* our duplicate of the caller's, errors return */
	MPI_Comm node;            /* the node's ranks */
	struct arena *arena;
	struct arena_mpi_layout l;
	int leader_rank;          /* the node's loader, as a rank of comm */
	uint64_t token;           /* the loader's random part of the socket name */
	pid_t *pids;              /* by node rank */
	int *ranks;               /* by node rank: the rank in comm */
	int *pidfds;              /* by node rank; -1 for ourselves or unknown */
};

/* Absolute deadline for a timeout (< 0: none, returns UINT64_MAX). */
MPI_HIDDEN uint64_t mpi_deadline(int64_t timeout_ns, uint64_t def_ns);
MPI_HIDDEN uint64_t mpi_now_ns(void);
/* Nanoseconds left before the deadline, for a libarena timeout argument:
 * -1 when there is none, 0 when it has passed. */
MPI_HIDDEN int64_t mpi_left_ns(uint64_t deadline);

/* 1 when a node peer has exited (its pidfd is readable). */
MPI_HIDDEN int mpi_peer_died(const struct arena_mpi *m);

/* Waits for req until it completes (0), a node peer dies (-ECONNRESET), the
 * deadline passes (-ETIMEDOUT) or MPI fails (-ECOMM), sleeping in short
 * steps between tests so that an idle rank does not hold a CPU. */
MPI_HIDDEN int mpi_wait(const struct arena_mpi *m, MPI_Request *req, uint64_t deadline);

/* The node handshake (share.c): fills m->arena or returns the node's error. */
MPI_HIDDEN int mpi_share_node(struct arena_mpi *m, const struct arena_mpi_opts *o,
			      int listen_fd, uint64_t deadline);
/* The loader's listening socket, bound before the ranks learn its name. */
MPI_HIDDEN int mpi_listen(const struct arena_mpi *m, uint64_t token);

/*
 * Fault points for the tests only (built with -DARENA_MPI_TESTING into the
 * test programs' copy of the library): ARENA_MPI_FAULT="point:rank,..."
 * makes rank `rank` (of comm) act at `point`.  The library proper has none.
 */
#ifdef ARENA_MPI_TESTING
MPI_HIDDEN int mpi_fault(const struct arena_mpi *m, const char *point);
#else
static inline int mpi_fault(const struct arena_mpi *m, const char *point)
{
	(void)m; (void)point;
	return 0;
}
#endif

#endif
