/* SPDX-License-Identifier: MIT */
/*
 * libarena_mpi: one arena per node shared by every MPI rank of that node, and
 * work spread over the ranks, each with its own pool.
 *
 *  - arena_mpi_share(): within each node (MPI_Comm_split_type SHARED), one
 *    rank builds the arena (a callback) or loads an image file, and hands the
 *    sealed memfd to the node's other ranks over an abstract-namespace Unix
 *    socket named from the job and the node (arena_send / arena_recv, which
 *    check the seals and every header field).  One copy per node, whatever
 *    the number of ranks.
 *  - arena_mpi_shard*(): a rank's share of the indices, block or strided.
 *  - arena_mpi_run(): a pool per rank over its share, results tallied (count,
 *    bytes, an order-independent checksum) and summed over all ranks.
 *  - arena_mpi_allreduce() / arena_mpi_barrier(): MPI collectives that end
 *    within a bound and fail at once when a rank of this node dies.
 *
 * Failures: every function returns 0 or a negative errno.  After any error
 * the communicator may hold a collective that will never complete (a rank
 * died): call MPI_Abort, not MPI_Finalize.  See README "Many machines".
 *
 * Only libarena's public API and MPI are used: link with -larena_mpi -larena
 * and your MPI (mpicc).
 */
#ifndef ARENA_MPI_H
#define ARENA_MPI_H

#include <mpi.h>
#include <stdint.h>

#include <arena.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/*
 * Codes with a meaning of their own here (besides those of arena.h):
 *   -ECONNRESET  a rank of this node died or hung up during sharing or a
 *                collective (seen at once: pidfd and socket hang-up)
 *   -ETIMEDOUT   the bound passed (a rank on another node died, or a rank
 *                never came)
 *   -ECOMM       MPI itself returned an error
 *   -EPROTO      a node peer broke the handshake (bad hello, wrong peer)
 */

/* Environment variable: split every node's ranks further into this many
 * "nodes" (contiguous blocks of node ranks), to run the multi-node paths on
 * one machine.  Unset or 1: one node per machine. */
#define ARENA_MPI_NODES_ENV "ARENA_MPI_NODES"

struct arena_mpi;

/* Builds the node's arena in the node's first rank: append items; the
 * library seals it afterwards.  Returns 0 or a negative errno, which every
 * rank of the node then returns. */
typedef int (*arena_mpi_build_fn)(struct arena *a, void *arg);

/* Or makes the whole arena elsewhere (a binding, another library) and
 * returns its sealed memfd, which the library then owns (it validates it
 * with arena_open_fd and closes it), or a negative errno. */
typedef int (*arena_mpi_build_fd_fn)(void *arg);

struct arena_mpi_opts {
	uint32_t flags;                 /* none yet: must be 0 */
	uint32_t _reserved;
	const char *path;               /* image file (arena_save) every node
	                                 * can read, or NULL to use build */
	arena_mpi_build_fn build;       /* exactly one of path, build and */
	arena_mpi_build_fd_fn build_fd; /* build_fd */
	void *build_arg;                /* for build or build_fd */
	const struct arena_create_opts *create; /* for build; NULL = defaults */
	int64_t timeout_ns;             /* bound on the whole share after the
	                                 * communicator split, < 0 none;
	                                 * 0 = 120 s */
};

/*
 * Collective over comm: every rank of comm calls it.  Each node's first rank
 * loads opts->path (arena_open_file), or creates, builds and seals an arena
 * (build), or opens the memfd build_fd returns;
 * the node's other ranks receive the same memfd, validated.  On success
 * *out holds the shared arena (arena_mpi_arena) and the node layout.
 *
 * Every live rank of a node returns the same result: 0, the loader's error
 * (-EBADMSG for a corrupt or truncated image, -ENOENT, ...), the receiver's
 * (-EBADMSG, -EPERM), -ECONNRESET when a rank of the node died, -ETIMEDOUT
 * after the bound, -EPROTO, -ECOMM.  When every rank of every node is alive,
 * an error on one node is returned on every node (the worst one).
 */
int arena_mpi_share(struct arena_mpi **out, MPI_Comm comm,
		    const struct arena_mpi_opts *opts);

/* The shared arena (owned by m). */
const struct arena *arena_mpi_arena(const struct arena_mpi *m);

struct arena_mpi_layout {
	int rank, size;            /* in the communicator given to share */
	int node, nodes;           /* this rank's node index, node count */
	int node_rank, node_size;  /* within the node; node_rank 0 loads */
	int loader;                /* 1 in the rank that built or loaded */
	int _pad;
	MPI_Comm node_comm;        /* the node's ranks (owned by m) */
};

/* The node layout.  Returns 0. */
int arena_mpi_layout(const struct arena_mpi *m, struct arena_mpi_layout *l);

/* Frees the node communicator, closes the arena and the peers' pidfds.  Not
 * collective.  NULL is a no-op. */
void arena_mpi_close(struct arena_mpi *m);

/* ---- shards -------------------------------------------------------------- */

#define ARENA_MPI_SHARD_BLOCK   0u  /* contiguous: rank r gets one block */
#define ARENA_MPI_SHARD_STRIDED 1u  /* rank r gets r, r+size, r+2 size, ... */

struct arena_mpi_shard {
	uint64_t first;   /* first index */
	uint64_t count;   /* number of indices */
	uint64_t stride;  /* distance between two of them (1 for a block) */
};

/*
 * Rank `rank` of `size`'s share of the indices [0, n): blocks differ in
 * length by at most one, lower ranks first.  Every index belongs to exactly
 * one rank.  Returns 0, -EINVAL (bad kind, rank or size).
 */
int arena_mpi_shard(uint64_t n, int rank, int size, uint32_t kind,
		    struct arena_mpi_shard *out);

/* The k-th index of a shard (k < count). */
static inline uint64_t arena_mpi_shard_index(const struct arena_mpi_shard *s, uint64_t k)
{
	return s->first + k * s->stride;
}

/* ---- a pool per rank ----------------------------------------------------- */

/*
 * What a run counts.  checksum is the sum (mod 2^64) over completions of a
 * hash of (index, status, result bytes): it does not depend on the order or
 * on which rank ran a task, so the total over ranks can be compared with a
 * checksum computed in one place.  index_sum is the sum of indices.
 */
struct arena_mpi_tally {
	uint64_t tasks;      /* completions reaped */
	uint64_t errors;     /* of which with status != 0 */
	uint64_t bytes;      /* result bytes */
	uint64_t checksum;
	uint64_t index_sum;
	uint64_t ns;         /* this rank: time from first submit to last reap;
	                      * total: the longest rank's */
};

/* The hash a tally adds for one completion (for checksums computed
 * elsewhere). */
uint64_t arena_mpi_result_hash(uint64_t index, int32_t status, const void *data,
			       uint64_t len);

/* Called for each completion in the rank that reaped it, before release; a
 * negative return stops the run with that error. */
typedef int (*arena_mpi_result_fn)(const struct arena_cqe *c, void *arg);

struct arena_mpi_run_opts {
	uint64_t n;                    /* indices [0, n); 0 = the whole arena */
	uint32_t shard;                /* ARENA_MPI_SHARD_* */
	uint32_t ranks;                /* ranks 0..ranks-1 take the work, the
	                                * others only join the gather (they
	                                * start no pool); 0 = every rank */
	struct arena_pool_opts pool;   /* this rank's pool.  ARENA_SPIN_AUTO
	                                * becomes NEVER when several ranks of
	                                * the node work and their workers fill
	                                * its CPUs (AUTO counts the spinners of
	                                * one pool only) */
	arena_mpi_result_fn on_result; /* may be NULL */
	void *result_arg;
	int64_t timeout_ns;            /* bound on the final gather (after the
	                                * local work), < 0 none; 0 = 120 s */
};

/*
 * Collective over the communicator given to share.  Each rank creates a pool
 * on the shared arena (forks its workers: call before starting threads),
 * submits its shard, reaps and releases every completion, stops the pool,
 * then sums the tallies over every rank into *total (may be NULL).  *mine
 * (may be NULL) gets this rank's.  Returns 0, a pool error, the callback's
 * error, or a gather error as arena_mpi_allreduce.
 */
int arena_mpi_run(struct arena_mpi *m, const struct arena_mpi_run_opts *o,
		  struct arena_mpi_tally *mine, struct arena_mpi_tally *total);

/* ---- bounded collectives ------------------------------------------------- */

/*
 * MPI_Allreduce over the communicator given to share (MPI_IN_PLACE allowed),
 * as a non-blocking collective polled with short sleeps (an idle rank leaves
 * its CPU to others) until it completes, a rank of this node dies
 * (-ECONNRESET) or timeout_ns passes (-ETIMEDOUT; < 0 none).  -ECOMM on an
 * MPI error.  After an error the collective is still pending: abort.
 */
int arena_mpi_allreduce(struct arena_mpi *m, const void *in, void *out, int count,
			MPI_Datatype type, MPI_Op op, int64_t timeout_ns);

/* MPI_Barrier with the same bound and death check. */
int arena_mpi_barrier(struct arena_mpi *m, int64_t timeout_ns);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* ARENA_MPI_H */
