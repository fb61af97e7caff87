/* SPDX-License-Identifier: MIT */
/*
 * The node layout (which ranks share a machine, who loads), the bounded MPI
 * waits, and arena_mpi_share's outer steps: split, learn the peers, hand the
 * arena over within the node (share.c), then agree on the result job-wide.
 *
 * Why the waits are polled: a blocking MPI collective with a dead rank never
 * returns (Open MPI 4.1 has no fault-tolerant collectives; by default mpirun
 * kills the whole job when a rank dies, but with --enable-recovery or under
 * other launchers the survivors would hang).  Every collective after the
 * split is non-blocking and waited for with MPI_Test between short sleeps,
 * watching the node peers' pidfds and a deadline, so that a death on this
 * node is an error at once and a death elsewhere an error at the deadline.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mpi_internal.h"

uint64_t mpi_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mpi_deadline(int64_t timeout_ns, uint64_t def_ns)
{
	if (timeout_ns < 0)
		return UINT64_MAX;
	return mpi_now_ns() + (timeout_ns ? (uint64_t)timeout_ns : def_ns);
}

int64_t mpi_left_ns(uint64_t deadline)
{
	uint64_t now = mpi_now_ns();

	if (deadline == UINT64_MAX)
		return -1;
	return now >= deadline ? 0 : (int64_t)(deadline - now);
}

int mpi_peer_died(const struct arena_mpi *m)
{
	struct pollfd pfd;

	for (int i = 0; m->pidfds && i < m->l.node_size; i++) {
		if (m->pidfds[i] < 0)
			continue;
		pfd.fd = m->pidfds[i];
		pfd.events = POLLIN;
		pfd.revents = 0;
		/* A pidfd polls readable once its process has exited. */
		if (poll(&pfd, 1, 0) == 1)
			return 1;
	}
	return 0;
}

static void nap(unsigned *step_ns)
{
	struct timespec ts = { 0, (long)*step_ns };

	nanosleep(&ts, NULL);
	/* 2 us doubling to 1 ms: quick answers stay quick, long waits cost a
	 * wake-up a millisecond. */
	if (*step_ns < 1000000u)
		*step_ns *= 2;
}

/* How long MPI gets to finish a collective after a peer of this node exited:
 * a peer that contributed and then exited normally is no failure. */
#define DEATH_GRACE_NS 200000000ull

int mpi_wait(const struct arena_mpi *m, MPI_Request *req, uint64_t deadline)
{
	unsigned step = 2000;
	uint64_t died_at = 0;

	for (;;) {
		int done = 0;

		if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
			return -ECOMM;
		if (done)
			return 0;
		if (!died_at && mpi_peer_died(m))
			died_at = mpi_now_ns();
		if (died_at && mpi_now_ns() - died_at > DEATH_GRACE_NS)
			return -ECONNRESET;
		if (mpi_now_ns() >= deadline)
			return -ETIMEDOUT;
		nap(&step);
	}
}

int arena_mpi_allreduce(struct arena_mpi *m, const void *in, void *out, int count,
			MPI_Datatype type, MPI_Op op, int64_t timeout_ns)
{
	MPI_Request req;

	if (!m || !out || count < 0)
		return -EINVAL;
	if (MPI_Iallreduce(in, out, count, type, op, m->comm, &req) != MPI_SUCCESS)
		return -ECOMM;
	return mpi_wait(m, &req, mpi_deadline(timeout_ns, MPI_DEFAULT_TIMEOUT_NS));
}

int arena_mpi_barrier(struct arena_mpi *m, int64_t timeout_ns)
{
	MPI_Request req;

	if (!m)
		return -EINVAL;
	if (MPI_Ibarrier(m->comm, &req) != MPI_SUCCESS)
		return -ECOMM;
	return mpi_wait(m, &req, mpi_deadline(timeout_ns, MPI_DEFAULT_TIMEOUT_NS));
}

/* ---- the layout ---------------------------------------------------------- */

/* ARENA_MPI_NODES=k: k "nodes" per machine.  Anything else but a small
 * positive number is ignored (one node per machine). */
static int fake_nodes(void)
{
	const char *s = getenv(ARENA_MPI_NODES_ENV);
	char *end;
	long k;

	if (!s || !*s)
		return 1;
	k = strtol(s, &end, 10);
	return *end || k < 1 || k > 4096 ? 1 : (int)k;
}

static int split_node(struct arena_mpi *m)
{
	MPI_Comm shared, node;
	int nr, ns, k = fake_nodes();

	if (MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, m->l.rank, MPI_INFO_NULL,
				&shared) != MPI_SUCCESS)
		return -ECOMM;
	if (k == 1) {
		m->node = shared;
		return 0;
	}
	MPI_Comm_rank(shared, &nr);
	MPI_Comm_size(shared, &ns);
	/* Contiguous blocks of the machine's ranks, as a hostfile would place
	 * them; more "nodes" than ranks leaves one rank per node. */
	if (k > ns)
		k = ns;
	if (MPI_Comm_split(shared, (int)((int64_t)nr * k / ns), nr, &node) != MPI_SUCCESS) {
		MPI_Comm_free(&shared);
		return -ECOMM;
	}
	MPI_Comm_free(&shared);
	m->node = node;
	return 0;
}

/* What each rank tells every other once: its loader, pid, and, from a
 * loader, the random part of its socket's name. */
struct rank_card {
	int32_t leader;
	int32_t pid;
	uint64_t token;
};

static int pidfd_open_compat(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

/* Fills the layout and the node peers from everyone's cards. */
static int learn_peers(struct arena_mpi *m, const struct rank_card *cards)
{
	int size = m->l.size, k = 0;

	m->l.node = m->l.nodes = 0;
	for (int r = 0; r < size; r++) {
		if (cards[r].leader == r) {
			if (r < m->leader_rank)
				m->l.node++;
			m->l.nodes++;
		}
	}
	m->token = cards[m->leader_rank].token;
	m->pids = calloc((size_t)m->l.node_size, sizeof(*m->pids));
	m->ranks = calloc((size_t)m->l.node_size, sizeof(*m->ranks));
	m->pidfds = malloc((size_t)m->l.node_size * sizeof(*m->pidfds));
	if (!m->pids || !m->ranks || !m->pidfds)
		return -ENOMEM;
	for (int i = 0; i < m->l.node_size; i++)
		m->pidfds[i] = -1;
	/* Node ranks are numbered by comm rank (the split's key), so the
	 * node's cards in comm order are node ranks 0, 1, ... */
	for (int r = 0; r < size && k < m->l.node_size; r++) {
		if (cards[r].leader != m->leader_rank)
			continue;
		if (cards[r].pid <= 0)
			return -EPROTO; /* would match a failed SO_PEERCRED */
		m->pids[k] = cards[r].pid;
		m->ranks[k] = r;
		if (k != m->l.node_rank) {
			m->pidfds[k] = pidfd_open_compat(cards[r].pid);
			/* Already gone: a death before we looked. */
			if (m->pidfds[k] < 0 && errno == ESRCH)
				return -ECONNRESET;
			/* Elsewhere (no pidfds, another pid namespace) the
			 * sockets' hang-ups and the deadline still bound. */
		}
		k++;
	}
	return k == m->l.node_size ? 0 : -EPROTO;
}

/* Who loads, and the one collective that tells everyone the node layout. */
static int exchange_cards(struct arena_mpi *m, uint64_t token, uint64_t deadline)
{
	struct rank_card mine, *cards;
	MPI_Request req;
	int r;

	memset(&mine, 0, sizeof(mine));
	mine.leader = m->leader_rank;
	mine.pid = (int32_t)getpid();
	mine.token = m->l.loader ? token : 0;
	cards = calloc((size_t)m->l.size, sizeof(*cards));
	if (!cards)
		return -ENOMEM;
	if (MPI_Iallgather(&mine, (int)sizeof(mine), MPI_BYTE, cards, (int)sizeof(mine),
			   MPI_BYTE, m->comm, &req) != MPI_SUCCESS) {
		free(cards);
		return -ECOMM;
	}
	r = mpi_wait(m, &req, deadline);
	if (r == 0)
		r = learn_peers(m, cards);
	free(cards);
	return r;
}

static int setup_layout(struct arena_mpi *m, MPI_Comm comm, uint64_t deadline)
{
	MPI_Group world_g, node_g;
	MPI_Request req;
	int zero = 0, r;

	/*
	 * The non-blocking dup completes only once every rank has arrived: a
	 * rank that died before calling share is then a timeout, not a hang.
	 * The split after it is blocking (MPI has no other), but everyone has
	 * just been seen alive.
	 */
	if (MPI_Comm_idup(comm, &m->comm, &req) != MPI_SUCCESS)
		return -ECOMM;
	r = mpi_wait(m, &req, deadline);
	if (r < 0) {
		m->comm = MPI_COMM_NULL; /* pending: never ours to free */
		return r;
	}
	/* Our errors come back as codes, never as an abort of the job. */
	MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
	MPI_Comm_rank(m->comm, &m->l.rank);
	MPI_Comm_size(m->comm, &m->l.size);
	r = split_node(m);
	if (r < 0)
		return r;
	MPI_Comm_set_errhandler(m->node, MPI_ERRORS_RETURN);
	MPI_Comm_rank(m->node, &m->l.node_rank);
	MPI_Comm_size(m->node, &m->l.node_size);
	m->l.node_comm = m->node;
	m->l.loader = m->l.node_rank == 0;
	/* The loader's rank in comm, without communicating. */
	MPI_Comm_group(m->comm, &world_g);
	MPI_Comm_group(m->node, &node_g);
	MPI_Group_translate_ranks(node_g, 1, &zero, world_g, &m->leader_rank);
	MPI_Group_free(&node_g);
	MPI_Group_free(&world_g);
	return m->leader_rank == MPI_UNDEFINED ? -ECOMM : 0;
}

void arena_mpi_close(struct arena_mpi *m)
{
	if (!m)
		return;
	for (int i = 0; m->pidfds && i < m->l.node_size; i++)
		if (m->pidfds[i] >= 0)
			close(m->pidfds[i]);
	free(m->pidfds);
	free(m->pids);
	free(m->ranks);
	arena_close(m->arena);
	if (m->node != MPI_COMM_NULL)
		MPI_Comm_free(&m->node);
	if (m->comm != MPI_COMM_NULL)
		MPI_Comm_free(&m->comm);
	free(m);
}

/* Errors after which a job-wide agreement could only wait for the deadline:
 * a rank is dead or stuck, so it will never join. */
static int rank_lost(int r)
{
	return r == -ECONNRESET || r == -ETIMEDOUT || r == -ECOMM;
}

/* The loader's socket, with a fresh random name.  Bound before the cards go
 * out, so that a rank that has the name can connect: a refusal then means
 * the loader gave up. */
static int open_listener(const struct arena_mpi *m, uint64_t *token)
{
	if (getrandom(token, sizeof(*token), 0) != (ssize_t)sizeof(*token))
		return -EAGAIN; /* entropy not ready, or a signal */
	return mpi_listen(m, *token);
}

int arena_mpi_share(struct arena_mpi **out, MPI_Comm comm,
		    const struct arena_mpi_opts *o)
{
	struct arena_mpi *m;
	uint64_t deadline, token = 0;
	int listen_fd = -1, r, worst;

	if (!out || !o || o->flags || !!o->path + !!o->build + !!o->build_fd != 1)
		return -EINVAL;
	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->comm = m->node = MPI_COMM_NULL;
	MPI_Comm_rank(comm, &m->l.rank);
	mpi_fault(m, "kill-before-share");
	deadline = mpi_deadline(o->timeout_ns, MPI_DEFAULT_TIMEOUT_NS);
	r = setup_layout(m, comm, deadline);
	if (r == 0 && m->l.loader) {
		listen_fd = open_listener(m, &token);
		if (listen_fd < 0)
			r = listen_fd;
	}
	/* Even a rank that failed above sends its card: the others would
	 * otherwise wait for it until the deadline.  (It then fails the
	 * handshake below, which its node sees at once.) */
	if (m->comm != MPI_COMM_NULL && m->node != MPI_COMM_NULL) {
		int e = exchange_cards(m, token, deadline);

		if (r == 0)
			r = e;
	}
	if (r == 0)
		r = mpi_share_node(m, o, listen_fd, deadline); /* closes it */
	else if (listen_fd >= 0)
		close(listen_fd);
	/* The job agrees on the worst result, unless a rank is lost. */
	if (m->comm != MPI_COMM_NULL && !rank_lost(r)) {
		int e = arena_mpi_allreduce(m, &r, &worst, 1, MPI_INT, MPI_MIN,
					    mpi_left_ns(deadline) ? mpi_left_ns(deadline) : 1);

		r = e < 0 ? (r < 0 ? r : e) : worst;
	}
	if (r < 0) {
		arena_mpi_close(m);
		return r;
	}
	*out = m;
	return 0;
}

const struct arena *arena_mpi_arena(const struct arena_mpi *m)
{
	return m ? m->arena : NULL;
}

int arena_mpi_layout(const struct arena_mpi *m, struct arena_mpi_layout *l)
{
	if (!m || !l)
		return -EINVAL;
	*l = m->l;
	return 0;
}

#ifdef ARENA_MPI_TESTING
int mpi_fault(const struct arena_mpi *m, const char *point)
{
	const char *s = getenv("ARENA_MPI_FAULT");
	size_t n = strlen(point);

	while (s && *s) {
		if (!strncmp(s, point, n) && s[n] == ':' && atoi(s + n + 1) == m->l.rank) {
			if (!strncmp(point, "kill", 4))
				raise(SIGKILL);
			return 1;
		}
		s = strchr(s, ',');
		if (s)
			s++;
	}
	return 0;
}
#endif
