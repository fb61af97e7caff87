/* SPDX-License-Identifier: MIT */
/*
 * Shards and runs: a rank's share of the indices, its own pool over the
 * node's shared arena, and the tally summed over every rank.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "mpi_internal.h"

int arena_mpi_shard(uint64_t n, int rank, int size, uint32_t kind,
		    struct arena_mpi_shard *out)
{
	uint64_t r = (uint64_t)rank, s = (uint64_t)size;

	if (!out || size < 1 || rank < 0 || rank >= size)
		return -EINVAL;
	if (kind == ARENA_MPI_SHARD_BLOCK) {
		uint64_t q = n / s, extra = n % s;

		/* The first n % size ranks take one more. */
		out->first = r * q + (r < extra ? r : extra);
		out->count = q + (r < extra);
		out->stride = 1;
	} else if (kind == ARENA_MPI_SHARD_STRIDED) {
		out->first = r;
		out->count = r < n ? (n - r + s - 1) / s : 0;
		out->stride = s;
	} else {
		return -EINVAL;
	}
	return 0;
}

static uint64_t mix64(uint64_t x)
{
	/* splitmix64's finalizer: sums of mixed values do not cancel the way
	 * sums of raw FNV values of similar inputs can. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

uint64_t arena_mpi_result_hash(uint64_t index, int32_t status, const void *data,
			       uint64_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ull ^ mix64(index) ^ ((uint64_t)(uint32_t)status << 1);

	for (uint64_t i = 0; p && i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return mix64(h ^ len);
}

/* How often a rank waiting for its completions looks at its node peers. */
#define PEER_LOOK_NS 50000000

#define BATCH 64

struct run_state {
	struct arena_pool *pool;
	struct arena_mpi_shard sh;
	uint64_t next;      /* shard position of the next submission */
	struct arena_mpi_tally t;
};

static int submit_some(struct run_state *s)
{
	struct arena_sqe sqe[BATCH];
	unsigned n = 0;
	int r;

	while (n < BATCH && s->next + n < s->sh.count) {
		memset(&sqe[n], 0, sizeof(sqe[n]));
		sqe[n].index = arena_mpi_shard_index(&s->sh, s->next + n);
		sqe[n].user_data = s->next + n;
		n++;
	}
	if (n == 0)
		return 0;
	r = arena_pool_submit(s->pool, sqe, n, 0);
	if (r == -EAGAIN)
		return 0; /* full: reap first */
	if (r < 0)
		return r;
	s->next += (uint64_t)r;
	return r;
}

static int reap_some(const struct arena_mpi *m, struct run_state *s,
		     const struct arena_mpi_run_opts *o, int64_t timeout_ns)
{
	struct arena_cqe c[BATCH];
	int n = arena_pool_reap(s->pool, c, BATCH, timeout_ns), r = 0;

	if (n == -EAGAIN)
		return 0;
	if (n == -ETIMEDOUT)
		return mpi_peer_died(m) ? -ECONNRESET : 0;
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		s->t.tasks++;
		s->t.errors += c[i].status != 0;
		s->t.bytes += c[i].len;
		s->t.index_sum += c[i].index;
		s->t.checksum += arena_mpi_result_hash(c[i].index, c[i].status, c[i].data,
						       c[i].len);
		if (r == 0 && o->on_result)
			r = o->on_result(&c[i], o->result_arg);
	}
	arena_pool_release_many(s->pool, c, (unsigned)n);
	return r;
}

/*
 * ARENA_SPIN_AUTO lets a pool spin while fewer than CPUs - 1 of *its own*
 * processes spin; the pools of a node's other ranks are not counted.  With
 * several working ranks whose workers fill the node's CPUs, their spinners
 * take CPUs from each other's workers (measured: 4 ranks x 1 worker of 20 us
 * tasks on 2 CPUs, 23-35 k tasks/s spinning, 86 k not), so AUTO becomes
 * NEVER there.
 */
static enum arena_spin node_spin(const struct arena_mpi *m, const struct arena_pool_opts *po,
				 int ranks)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t working = 0;

	if (po->spin != ARENA_SPIN_AUTO)
		return po->spin;
	for (int k = 0; k < m->l.node_size; k++)
		working += m->ranks[k] < ranks;
	if (working > 1 && cpus > 0 && working * (po->workers ? po->workers : 1) >= (uint64_t)cpus)
		return ARENA_SPIN_NEVER;
	return ARENA_SPIN_AUTO;
}

static int run_local(struct arena_mpi *m, const struct arena_mpi_run_opts *o, int ranks,
		     struct run_state *s)
{
	struct arena_pool_opts po = o->pool;
	uint64_t t0;
	int r;

	po.spin = node_spin(m, &o->pool, ranks);
	r = arena_pool_create(&s->pool, m->arena, &po);
	if (r < 0)
		return r;
	t0 = mpi_now_ns();
	while (r >= 0 && s->t.tasks < s->sh.count) {
		int sent = submit_some(s);

		if (sent < 0) {
			r = sent;
			break;
		}
		/* Reap without waiting while more could be submitted; wait
		 * (in steps, to look at the node's ranks) otherwise. */
		r = reap_some(m, s, o, sent > 0 ? 0 : PEER_LOOK_NS);
	}
	s->t.ns = mpi_now_ns() - t0;
	if (r < 0) {
		arena_pool_destroy(s->pool);
		return r;
	}
	r = arena_pool_stop(s->pool, ARENA_STOP_DRAIN, -1);
	arena_pool_destroy(s->pool);
	return r;
}

int arena_mpi_run(struct arena_mpi *m, const struct arena_mpi_run_opts *o,
		  struct arena_mpi_tally *mine, struct arena_mpi_tally *total)
{
	struct run_state s;
	uint64_t n, sums[5], ns;
	int ranks, r;

	if (!m || !m->arena || !o)
		return -EINVAL;
	ranks = o->ranks ? (int)o->ranks : m->l.size;
	if (o->ranks > (uint32_t)m->l.size)
		return -EINVAL;
	n = o->n ? o->n : arena_count(m->arena);
	if (n > arena_count(m->arena))
		return -ERANGE;
	memset(&s, 0, sizeof(s));
	if (m->l.rank < ranks)
		r = arena_mpi_shard(n, m->l.rank, ranks, o->shard, &s.sh);
	else
		r = arena_mpi_shard(0, 0, 1, o->shard, &s.sh); /* nothing */
	if (r < 0)
		return r;
	if (s.sh.count)
		r = run_local(m, o, ranks, &s);
	if (mine)
		*mine = s.t;
	if (r < 0)
		return r; /* the gather would wait for the deadline: skip it */
	sums[0] = s.t.tasks;
	sums[1] = s.t.errors;
	sums[2] = s.t.bytes;
	sums[3] = s.t.checksum;
	sums[4] = s.t.index_sum;
	ns = s.t.ns;
	r = arena_mpi_allreduce(m, MPI_IN_PLACE, sums, 5, MPI_UINT64_T, MPI_SUM, o->timeout_ns);
	if (r == 0)
		r = arena_mpi_allreduce(m, MPI_IN_PLACE, &ns, 1, MPI_UINT64_T, MPI_MAX,
					o->timeout_ns);
	if (r == 0 && total) {
		total->tasks = sums[0];
		total->errors = sums[1];
		total->bytes = sums[2];
		total->checksum = sums[3];
		total->index_sum = sums[4];
		total->ns = ns;
	}
	return r;
}
