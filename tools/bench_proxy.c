/* SPDX-License-Identifier: MIT */
/*
 * arena-bench, proxy mode: the seed's fix.  A Manager server process holds
 * the sequence and answers __getitem__ over a socket (ListProxy); a worker
 * asks it for item i, then returns the item to the parent.  Here the server
 * is one forked process with a Unix stream socket per worker, served with
 * poll(): request = u64 index, reply = u32 len + the record (len UINT32_MAX:
 * index out of range).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench.h"

#define NO_ITEM UINT32_MAX

/* Answers one complete request buffered in rb. */
static int serve_request(const struct workload *wl, struct rbuf *rb, int fd,
			 _Atomic uint64_t *ctr)
{
	uint64_t index;
	uint32_t len = NO_ITEM;
	struct iovec iov[2] = { { &len, sizeof(len) } };

	memcpy(&index, rbuf_data(rb), sizeof(index));
	rbuf_consume(rb, sizeof(index));
	if (index < wl->count) {
		len = (uint32_t)(wl->off[index + 1] - wl->off[index]);
		iov[1] = (struct iovec){ wl->blob + wl->off[index], len };
	}
	return io_write_all(fd, iov, len == NO_ITEM ? 1 : 2, ctr);
}

/* The server's loop; returns its exit code: 0 once every worker hung up. */
static int serve(const struct workload *wl, unsigned n, const int *fds,
		 _Atomic uint64_t *ctr)
{
	struct pollfd pfd[BENCH_MAX_WORKERS];
	struct rbuf rb[BENCH_MAX_WORKERS];
	unsigned open = n;

	for (unsigned i = 0; i < n; i++) {
		pfd[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
		if (rbuf_init(&rb[i], 4096) < 0)
			return 30;
	}
	while (open > 0) {
		count_call(ctr);
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 31;
		}
		for (unsigned i = 0; i < n; i++) {
			ssize_t r;

			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			r = rbuf_fill(&rb[i], pfd[i].fd, ctr);
			if (r < 0)
				return 32;
			if (r == 0) {
				/* The worker left: a request cut short is its bug. */
				if (rbuf_avail(&rb[i]) != 0)
					return 33;
				close(pfd[i].fd);
				pfd[i].fd = -1;   /* poll() skips negative fds */
				open--;
				continue;
			}
			while (rbuf_avail(&rb[i]) >= sizeof(uint64_t))
				if (serve_request(wl, &rb[i], pfd[i].fd, ctr) < 0)
					return 34;
		}
	}
	for (unsigned i = 0; i < n; i++)
		rbuf_free(&rb[i]);
	return 0;
}

int proxy_server_start(struct workload *wl, unsigned nconn, int *conn_fds,
		       struct sys_counters *ctr, pid_t *pid)
{
	int srv[BENCH_MAX_WORKERS];
	unsigned i;
	int err = 0;

	for (i = 0; i < nconn; i++) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			err = -errno;
			break;
		}
		srv[i] = sv[0];
		conn_fds[i] = sv[1];
	}
	if (!err) {
		fflush(NULL);
		*pid = fork();
		if (*pid < 0)
			err = -errno;
		if (*pid == 0) {
			if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
				_exit(35);
			/* Keep only the server ends: EOF must mean "worker gone". */
			for (unsigned j = 0; j < nconn; j++)
				close(conn_fds[j]);
			_exit(serve(wl, nconn, srv, &ctr->server));
		}
	}
	/* The parent keeps the worker ends only (all of them on failure: none). */
	for (unsigned j = 0; j < i; j++) {
		close(srv[j]);
		if (err) {
			close(conn_fds[j]);
			conn_fds[j] = -1;
		}
	}
	if (err)
		*pid = 0;
	return err;
}

static int proxy_get(struct worker_ctx *w, uint64_t index, const uint8_t *payload,
		     size_t plen, const void **item, size_t *len)
{
	_Atomic uint64_t *ctr = &w->ctr->worker;
	struct iovec iov = { &index, sizeof(index) };
	uint32_t n;
	int r;

	/* The previous reply was written to the parent: drop it now. */
	if (rbuf_avail(&w->sbuf) >= sizeof(n)) {
		memcpy(&n, rbuf_data(&w->sbuf), sizeof(n));
		rbuf_consume(&w->sbuf, sizeof(n) + (n == NO_ITEM ? 0 : n));
	}
	if ((r = io_write_all(w->server_fd, &iov, 1, ctr)) < 0)
		return r;
	if ((r = rbuf_need(&w->sbuf, w->server_fd, sizeof(n), ctr)) != 0)
		return r < 0 ? r : -EPIPE;
	memcpy(&n, rbuf_data(&w->sbuf), sizeof(n));
	if (n == NO_ITEM)
		return -ERANGE;
	if ((r = rbuf_need(&w->sbuf, w->server_fd, sizeof(n) + n, ctr)) != 0)
		return r < 0 ? r : -EPIPE;
	*item = rbuf_data(&w->sbuf) + sizeof(n);
	*len = n;
	return 0;
}

const struct fork_mode bench_proxy_mode = {
	.mode = MODE_PROXY,
	.server = true,
	.get = proxy_get,
};
