/* SPDX-License-Identifier: MIT */
/*
 * The node handshake: the loader builds or loads the arena and hands its
 * sealed memfd to every other rank of the node over an abstract Unix socket.
 *
 *   rank -> loader   HELLO   (token, node rank, pid; the kernel's SO_PEERCRED
 *                             must name the same pid as the rank's MPI card)
 *   loader -> rank   STATUS  (the load's result), then arena_send()
 *   rank -> loader   ACK     (arena_recv()'s result: seals, header, sizes)
 *   loader -> rank   VERDICT (0 only if every rank of the node acked 0)
 *
 * Any message from the loader with a non-zero status is final.  Every wait
 * is a poll on the socket plus the pidfds of the node's other ranks, under
 * the share's deadline: a rank that dies is seen at once by every other rank
 * of the node (its pidfd; for the loader also its socket's hang-up), and the
 * loader tells the survivors -ECONNRESET; a rank that sends garbage makes the
 * loader's verdict an error for all.  No MPI call is made here: a collective
 * with a dead rank is what this protocol must not wait for.
 *
 * The socket's name, "libarena-mpi.<loader's random token>.<loader's rank>",
 * reaches the ranks through MPI only.  Abstract sockets have no permissions,
 * so anyone on the machine could connect: a connection whose peer is not one
 * of the node's ranks (by SO_PEERCRED pid) is closed unread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mpi_internal.h"

#define HS_MAGIC 0x49504d414e455241ull /* "ARENAMPI" little-endian */

enum hs_kind { HS_HELLO = 1, HS_STATUS = 2, HS_ACK = 3, HS_VERDICT = 4 };

struct hs_msg {
	uint64_t magic;
	uint64_t token;
	int32_t status;
	uint32_t node_rank;
	int32_t pid;
	uint32_t kind;
};
_Static_assert(sizeof(struct hs_msg) == 32, "handshake message layout");

static socklen_t sock_name(struct sockaddr_un *sa, uint64_t token, int leader_rank)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	/* sun_path[0] == 0: the abstract namespace, gone with the socket. */
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1,
		     "libarena-mpi.%016llx.%d", (unsigned long long)token, leader_rank);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

int mpi_listen(const struct arena_mpi *m, uint64_t token)
{
	struct sockaddr_un sa;
	socklen_t len = sock_name(&sa, token, m->leader_rank);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, len) < 0 ||
	    listen(fd, m->l.node_size + 16) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

/*
 * Waits until fd has `events` (0), a node peer dies (-ECONNRESET), or the
 * deadline passes (-ETIMEDOUT).  The socket is looked at first: a peer that
 * answered and then exited is not a failure of the answer.
 */
static int wait_io(const struct arena_mpi *m, int fd, short events, uint64_t deadline)
{
	struct pollfd pfd[1 + 64];
	int n = 1;

	pfd[0].fd = fd;
	pfd[0].events = events;
	for (int i = 0; i < m->l.node_size && n < (int)(sizeof(pfd) / sizeof(pfd[0])); i++) {
		if (m->pidfds[i] < 0)
			continue;
		pfd[n].fd = m->pidfds[i];
		pfd[n].events = POLLIN;
		n++;
	}
	/* (Beyond 64 peers only the sockets' hang-ups and the deadline
	 * bound: far more ranks than any machine's CPUs.) */
	for (;;) {
		int64_t left = mpi_left_ns(deadline);
		int ms = left < 0 ? 1000 : (int)((left + 999999) / 1000000);
		int r;

		if (ms > 1000)
			ms = 1000;
		for (int i = 0; i < n; i++)
			pfd[i].revents = 0;
		r = poll(pfd, (nfds_t)n, ms);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (pfd[0].revents)
			return 0;
		for (int i = 1; r > 0 && i < n; i++)
			if (pfd[i].revents)
				return -ECONNRESET;
		if (mpi_left_ns(deadline) == 0)
			return -ETIMEDOUT;
	}
}

static int read_msg(const struct arena_mpi *m, int fd, struct hs_msg *msg, uint64_t deadline)
{
	size_t done = 0;

	while (done < sizeof(*msg)) {
		int r = wait_io(m, fd, POLLIN, deadline);
		ssize_t n;

		if (r < 0)
			return r;
		n = recv(fd, (char *)msg + done, sizeof(*msg) - done, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -ECONNRESET; /* hung up, or reset */
		done += (size_t)n;
	}
	return msg->magic == HS_MAGIC && msg->token == m->token ? 0 : -EPROTO;
}

static int send_msg(const struct arena_mpi *m, int fd, enum hs_kind kind, int status)
{
	struct hs_msg msg;
	size_t done = 0;

	memset(&msg, 0, sizeof(msg));
	msg.magic = HS_MAGIC;
	msg.token = m->token;
	msg.status = status;
	msg.node_rank = (uint32_t)m->l.node_rank;
	msg.pid = (int32_t)getpid();
	msg.kind = kind;
	if (kind == HS_HELLO && mpi_fault(m, "garbage-hello"))
		memset(&msg, 0x5a, sizeof(msg));
	while (done < sizeof(msg)) {
		ssize_t n = send(fd, (char *)&msg + done, sizeof(msg) - done, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -ECONNRESET;
		done += (size_t)n;
	}
	return 0;
}

static int peer_pid(int fd, pid_t *pid)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return -errno;
	*pid = uc.pid;
	return 0;
}

/* ---- the loader ---------------------------------------------------------- */

static int load(struct arena_mpi *m, const struct arena_mpi_opts *o)
{
	struct arena *a = NULL;
	int r;

	if (o->path) {
		r = arena_open_file(&a, o->path);
	} else if (o->build_fd) {
		int fd = o->build_fd(o->build_arg);

		r = fd;
		if (fd >= 0) {
			r = arena_open_fd(&a, fd, 0); /* checks seals and all */
			close(fd);
		}
	} else {
		r = arena_create(&a, o->create);
		if (r == 0)
			r = o->build(a, o->build_arg);
		if (r == 0)
			r = arena_seal(a);
	}
	if (r < 0) {
		arena_close(a);
		return r;
	}
	m->arena = a;
	return 0;
}

/* Takes one connection; stores it as conn[node rank] once its peer is known
 * to be that rank.  0 (taken, or a stranger dropped), or the node's error. */
static int take_one(struct arena_mpi *m, int lfd, int *conn, int *got, uint64_t deadline)
{
	struct hs_msg hello;
	pid_t pid = 0;
	int fd, k, r;

	r = wait_io(m, lfd, POLLIN, deadline);
	if (r < 0)
		return r;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return errno == EAGAIN || errno == EINTR || errno == ECONNABORTED ? 0 : -errno;
	if (peer_pid(fd, &pid) < 0)
		pid = 0;
	for (k = 1; k < m->l.node_size; k++)
		if (m->pids[k] == pid)
			break;
	if (k == m->l.node_size) {
		close(fd); /* not one of ours */
		return 0;
	}
	if (conn[k] >= 0) {
		close(fd); /* a second connection from one rank */
		return -EPROTO;
	}
	/* Rank k's connection from here on, even if its hello is garbage:
	 * it hears the verdict like everyone else. */
	conn[k] = fd;
	r = read_msg(m, fd, &hello, deadline);
	if (r == 0 && (hello.kind != HS_HELLO || hello.node_rank != (uint32_t)k ||
		       hello.pid != pid))
		r = -EPROTO;
	if (r == 0)
		(*got)++;
	return r;
}

/* Hands over the arena (or garbage, for the tests) and collects the acks. */
static int hand_over(struct arena_mpi *m, const int *conn, uint64_t deadline)
{
	static const char garbage[32] = "this is not an arena message!!!";
	int verdict = 0, k, r;

	for (k = 1; k < m->l.node_size; k++) {
		r = send_msg(m, conn[k], HS_STATUS, 0);
		if (r == 0 && mpi_fault(m, "garbage-arena"))
			r = send(conn[k], garbage, sizeof(garbage), MSG_NOSIGNAL) ==
			    (ssize_t)sizeof(garbage) ? 0 : -ECONNRESET;
		else if (r == 0)
			r = arena_send(conn[k], m->arena, NULL) < 0 ? -ECONNRESET : 0;
		if (r < 0)
			return r;
	}
	mpi_fault(m, "kill-loader-sent");
	for (k = 1; k < m->l.node_size; k++) {
		struct hs_msg ack;

		r = read_msg(m, conn[k], &ack, deadline);
		if (r == 0 && (ack.kind != HS_ACK || ack.status > 0 || ack.status <= -4096))
			r = -EPROTO; /* not an ack, or no errno */
		if (r < 0)
			return r;
		/* The worst ack: the same answer whatever the order. */
		if (ack.status < verdict)
			verdict = ack.status;
	}
	return verdict;
}

static int serve(struct arena_mpi *m, const struct arena_mpi_opts *o, int lfd,
		 uint64_t deadline)
{
	int *conn = malloc((size_t)m->l.node_size * sizeof(*conn));
	int got = 0, verdict, k;

	if (!conn) {
		close(lfd);
		return -ENOMEM;
	}
	for (k = 0; k < m->l.node_size; k++)
		conn[k] = -1;
	verdict = load(m, o);
	mpi_fault(m, "kill-loader-loaded");
	/* Everyone comes, even to hear that the load failed. */
	while (got < m->l.node_size - 1) {
		int r = take_one(m, lfd, conn, &got, deadline);

		if (r < 0) {
			verdict = r;
			break;
		}
	}
	close(lfd);
	if (verdict == 0)
		verdict = hand_over(m, conn, deadline);
	for (k = 1; k < m->l.node_size; k++) {
		if (conn[k] < 0)
			continue;
		send_msg(m, conn[k], HS_VERDICT, verdict); /* a dead peer: ignored */
		close(conn[k]);
	}
	free(conn);
	/* Ranks that had not connected yet find the name gone: refused. */
	return verdict;
}

/* ---- the other ranks ----------------------------------------------------- */

static int connect_loader(const struct arena_mpi *m, uint64_t deadline)
{
	struct sockaddr_un sa;
	socklen_t len = sock_name(&sa, m->token, m->leader_rank);
	struct timespec ts = { 0, 1000000 };
	pid_t pid = 0;
	int fd, r;

	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, len) == 0)
			break;
		r = -errno;
		close(fd);
		/* The loader bound its socket before the cards went out:
		 * refused means it has closed it (gave up, or died). */
		if (r == -ECONNREFUSED || r == -ENOENT)
			return -ECONNRESET;
		if (r != -EAGAIN && r != -EINTR)
			return r;
		if (mpi_left_ns(deadline) == 0)
			return -ETIMEDOUT;
		nanosleep(&ts, NULL); /* backlog full: strangers crowding */
	}
	r = peer_pid(fd, &pid);
	if (r == 0 && pid != m->pids[0])
		r = -EPROTO; /* someone else holds the name */
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

static int join(struct arena_mpi *m, uint64_t deadline)
{
	struct arena *a = NULL;
	struct hs_msg msg;
	int fd, r, got;

	mpi_fault(m, "kill-before-connect");
	fd = connect_loader(m, deadline);
	if (fd < 0)
		return fd;
	r = send_msg(m, fd, HS_HELLO, 0);
	if (r == 0)
		r = read_msg(m, fd, &msg, deadline);
	if (r == 0 && msg.status != 0)
		r = msg.status > -4096 && msg.status < 0 ? msg.status : -EPROTO;
	else if (r == 0 && msg.kind != HS_STATUS)
		r = -EPROTO;
	if (r < 0) {
		close(fd);
		return r;
	}
	got = arena_recv(fd, &a, NULL, mpi_left_ns(deadline));
	mpi_fault(m, "kill-after-recv");
	/* Even a failed receive waits for the verdict, so that the node's
	 * ranks all return the same error. */
	r = send_msg(m, fd, HS_ACK, got);
	if (r == 0)
		r = read_msg(m, fd, &msg, deadline);
	if (r == 0 && msg.kind != HS_VERDICT)
		r = -EPROTO;
	if (r == 0)
		r = msg.status > -4096 && msg.status <= 0 ? msg.status : -EPROTO;
	if (r == 0 && got < 0)
		r = -EPROTO; /* the loader cannot have accepted our error */
	close(fd);
	if (r < 0) {
		arena_close(a);
		return r;
	}
	m->arena = a;
	return 0;
}

int mpi_share_node(struct arena_mpi *m, const struct arena_mpi_opts *o, int listen_fd,
		   uint64_t deadline)
{
	if (m->l.loader)
		return serve(m, o, listen_fd, deadline);
	return join(m, deadline);
}
