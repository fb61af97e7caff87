/* SPDX-License-Identifier: MIT */
/*
 * arena-bench: the harness shared by the copy, proxy and pipe modes, which
 * rebuild multiprocessing.Pool out of plain processes and pipes:
 *   - N forked workers, each with a task pipe (parent -> worker) and a result
 *     pipe (worker -> parent); tasks go round-robin, as the seed's equal tasks
 *     would spread over Pool workers;
 *   - the main thread is the producer, a consumer thread polls the result
 *     pipes; at most `depth` tasks are in flight (the seed's Queue(10)).
 * What a worker does to get item i is the mode's business (struct fork_mode).
 *
 * Messages: task  = { u64 task, u64 index, u64 payload_len } + payload
 *           result= { u64 task, u32 len, i32 status } + len bytes
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench.h"

struct task_msg {
	uint64_t task, index, payload_len;
};
struct result_msg {
	uint64_t task;
	uint32_t len;
	int32_t status;
};

struct fork_run {
	struct bench_run *run;
	const struct fork_mode *m;
	struct sys_counters *ctr;
	unsigned nw;
	pid_t pid[BENCH_MAX_WORKERS];
	int task_fd[BENCH_MAX_WORKERS];   /* parent's write ends */
	int res_fd[BENCH_MAX_WORKERS];    /* parent's read ends */
	pid_t server;
	struct gate gate;
	_Atomic bool producer_failed;     /* tells the consumer to give up */
	/* written by the consumer, read after it is joined */
	uint64_t checksum;
	int err;
	char errmsg[200];
};

/* The worker process: take tasks until the task pipe closes.  Returns the
 * exit code (0 on a clean EOF). */
static int worker_loop(const struct fork_mode *m, struct worker_ctx *w,
		       int task_fd, int res_fd)
{
	_Atomic uint64_t *ctr = &w->ctr->worker;
	struct rbuf in;
	int r;

	if (rbuf_init(&in, 64 * 1024) < 0)
		return 10;
	for (;;) {
		struct task_msg t;
		struct result_msg h;
		const void *item = NULL;
		size_t len = 0;

		r = rbuf_need(&in, task_fd, sizeof(t), ctr);
		if (r == 1)
			break;
		if (r < 0)
			return 11;
		memcpy(&t, rbuf_data(&in), sizeof(t));
		if (t.payload_len > SIZE_MAX - sizeof(t) ||
		    rbuf_need(&in, task_fd, sizeof(t) + t.payload_len, ctr) != 0)
			return 12;
		h.status = m->get(w, t.index, rbuf_data(&in) + sizeof(t),
				  t.payload_len, &item, &len);
		if (h.status < 0 || len > UINT32_MAX)
			len = 0;
		h.task = t.task;
		h.len = (uint32_t)len;
		struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)item, len } };
		if (io_write_all(res_fd, iov, len ? 2 : 1, ctr) < 0)
			return 13;
		rbuf_consume(&in, sizeof(t) + t.payload_len);
	}
	rbuf_free(&in);
	return 0;
}

/* In the child after fork: keep only this worker's fds, then work. */
static void worker_child(struct fork_run *fr, unsigned i, int task_r, int res_w,
			 const int *task_rs, const int *res_ws, const int *conn)
{
	struct worker_ctx w = { .opt = fr->run->opt, .wl = fr->run->wl,
				.server_fd = conn ? conn[i] : -1, .ctr = fr->ctr };

	/* A worker must not outlive a killed benchmark. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		_exit(20);
	for (unsigned j = 0; j < fr->nw; j++) {
		close(fr->task_fd[j]);
		close(fr->res_fd[j]);
		if (j != i) {
			close(task_rs[j]);
			close(res_ws[j]);
			if (conn)
				close(conn[j]);
		}
	}
	if (conn && rbuf_init(&w.sbuf, 4096) < 0)
		_exit(21);
	_exit(worker_loop(fr->m, &w, task_r, res_w));
}

static void consumer_fail(struct fork_run *fr, int err, const char *fmt, const char *what)
{
	fr->err = err;
	snprintf(fr->errmsg, sizeof(fr->errmsg), fmt, what);
}

/* Handles every complete result buffered for one worker. */
static int consume_buffered(struct fork_run *fr, struct rbuf *rb, uint64_t *got)
{
	struct bench_run *run = fr->run;

	while (rbuf_avail(rb) >= sizeof(struct result_msg)) {
		struct result_msg h;

		memcpy(&h, rbuf_data(rb), sizeof(h));
		if (rbuf_avail(rb) < sizeof(h) + h.len) {
			/* Incomplete: make room for the whole of it. */
			if (rbuf_reserve(rb, sizeof(h) + h.len) < 0) {
				consumer_fail(fr, -ENOMEM, "%s", "out of memory");
				return -ENOMEM;
			}
			return 0;
		}
		if (h.task >= run->ntasks || run->done_ns[h.task] != 0) {
			consumer_fail(fr, -EBADMSG, "%s", "unknown or duplicate task in a result");
			return -EBADMSG;
		}
		if (h.status < 0) {
			consumer_fail(fr, h.status, "worker: %s", strerror(-h.status));
			return h.status;
		}
		fr->checksum += fnv1a64(rbuf_data(rb) + sizeof(h), h.len);
		rbuf_consume(rb, sizeof(h) + h.len);
		run->done_ns[h.task] = now_ns();
		++*got;
		gate_release(&fr->gate);
		progress_tick(&run->pg, *got);
	}
	return 0;
}

static void *consumer_main(void *arg)
{
	struct fork_run *fr = arg;
	struct pollfd pfd[BENCH_MAX_WORKERS];
	struct rbuf rb[BENCH_MAX_WORKERS];
	uint64_t got = 0, last = now_ns();
	unsigned i;

	for (i = 0; i < fr->nw; i++) {
		pfd[i] = (struct pollfd){ .fd = fr->res_fd[i], .events = POLLIN };
		if (rbuf_init(&rb[i], 64 * 1024) < 0) {
			consumer_fail(fr, -ENOMEM, "%s", "out of memory");
			goto out;
		}
	}
	while (got < fr->run->ntasks && !fr->err) {
		int n;

		count_call(&fr->ctr->consumer);
		/* A timeout only to notice a producer failure or a hang. */
		n = poll(pfd, fr->nw, 200);
		if (n < 0 && errno != EINTR) {
			consumer_fail(fr, -errno, "poll: %s", strerror(errno));
			break;
		}
		if (n <= 0) {
			if (atomic_load(&fr->producer_failed))
				break;
			if (now_ns() - last > BENCH_STALL_NS)
				consumer_fail(fr, -ETIMEDOUT, "%s", "no result for 30 s: hang");
			continue;
		}
		last = now_ns();
		for (unsigned j = 0; j < fr->nw && !fr->err; j++) {
			ssize_t r;

			if (!pfd[j].revents)
				continue;
			r = rbuf_fill(&rb[j], pfd[j].fd, &fr->ctr->consumer);
			if (r == 0)
				consumer_fail(fr, -EPIPE, "%s", "a worker died (result pipe closed)");
			else if (r < 0)
				consumer_fail(fr, (int)r, "read result: %s", strerror((int)-r));
			else
				consume_buffered(fr, &rb[j], &got);
		}
	}
out:
	for (unsigned j = 0; j < i; j++)
		rbuf_free(&rb[j]);
	if (fr->err)
		gate_abort(&fr->gate);   /* the producer may be waiting for a slot */
	return NULL;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Forks the workers; the fds for each are made here, then pruned in each child. */
static int start_workers(struct fork_run *fr, const int *conn, struct mode_result *res)
{
	int task_r[BENCH_MAX_WORKERS], res_w[BENCH_MAX_WORKERS];
	unsigned i;
	int err = 0;

	for (i = 0; i < fr->nw; i++)
		task_r[i] = res_w[i] = -1;
	for (i = 0; i < fr->nw; i++) {
		int tp[2], rp[2];

		if (pipe2(tp, O_CLOEXEC) < 0) {
			err = -errno;
			break;
		}
		if (pipe2(rp, O_CLOEXEC) < 0) {
			err = -errno;
			close(tp[0]);
			close(tp[1]);
			break;
		}
		task_r[i] = tp[0];
		fr->task_fd[i] = tp[1];
		fr->res_fd[i] = rp[0];
		res_w[i] = rp[1];
	}
	if (err) {
		snprintf(res->err, sizeof(res->err), "pipe: %s", strerror(-err));
		goto out;
	}
	fflush(NULL);   /* nothing buffered may be written twice */
	for (i = 0; i < fr->nw; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			err = -errno;
			snprintf(res->err, sizeof(res->err), "fork: %s", strerror(errno));
			break;
		}
		if (pid == 0)
			worker_child(fr, i, task_r[i], res_w[i], task_r, res_w, conn);
		fr->pid[i] = pid;
	}
out:
	for (i = 0; i < fr->nw; i++) {
		close_fd(&task_r[i]);
		close_fd(&res_w[i]);
	}
	return err;
}

/* Memory of every helper process while they are still alive. */
static int measure_memory(struct fork_run *fr, struct mode_result *res)
{
	const struct workload *wl = fr->run->wl;
	/* The sequence's own mappings: the item bytes and the offset table. */
	uintptr_t seq_maps[2] = { (uintptr_t)wl->blob, (uintptr_t)wl->off };
	struct proc_mem pm;
	uint64_t sum = 0, seq = 0, kb;
	int r;

	for (unsigned i = 0; i < fr->nw; i++) {
		if ((r = proc_mem_read(fr->pid[i], &pm)) < 0)
			return r;
		if (pm.hwm_kb > res->worker_hwm_kb)
			res->worker_hwm_kb = pm.hwm_kb;
		sum += pm.pss_kb;
		if ((r = proc_mapping_pss(fr->pid[i], seq_maps, 2, NULL, &kb)) < 0)
			return r;
		seq += kb;
	}
	res->worker_pss_kb = sum / fr->nw;
	/* Pipe workers hold the sequence by fork; copy workers hold a fresh
	 * copy per task in their heap (not one mapping: their w.PSS says it);
	 * proxy workers hold none. */
	res->seq_pss_kb = fr->m->inherit_sequence ? seq / fr->nw :
			  fr->m->server ? 0 : SEQ_PSS_NONE;
	if (fr->server > 0) {
		if ((r = proc_mem_read(fr->server, &pm)) < 0)
			return r;
		sum += pm.pss_kb;
	}
	res->helpers_pss_kb = sum;
	return 0;
}

/* Closing the task pipes is the stop signal; then every child is reaped. */
static int stop_workers(struct fork_run *fr, bool failed, struct mode_result *res)
{
	char msg[128];
	int err = 0;

	for (unsigned i = 0; i < fr->nw; i++) {
		close_fd(&fr->task_fd[i]);
		close_fd(&fr->res_fd[i]);
		/* After a failure a worker may be stuck mid-message: no waiting. */
		if (failed && fr->pid[i] > 0)
			kill(fr->pid[i], SIGKILL);
	}
	for (unsigned i = 0; i < fr->nw; i++) {
		if (fr->pid[i] <= 0)
			continue;
		if (child_reap(fr->pid[i], "a worker", msg, sizeof(msg)) < 0 && !failed && !err) {
			err = -ECHILD;
			snprintf(res->err, sizeof(res->err), "%s", msg);
		}
		fr->pid[i] = 0;
	}
	if (fr->server > 0) {
		/* The server leaves once every worker connection is closed. */
		if (failed)
			kill(fr->server, SIGKILL);
		if (child_reap(fr->server, "the proxy server", msg, sizeof(msg)) < 0 &&
		    !failed && !err) {
			err = -ECHILD;
			snprintf(res->err, sizeof(res->err), "%s", msg);
		}
		fr->server = 0;
	}
	return err;
}

/* The producer: the seed's loop of apply_async + qu.put. */
static int produce(struct fork_run *fr, struct mode_result *res)
{
	struct bench_run *run = fr->run;
	uint64_t count = run->wl->count;

	for (uint64_t t = 0; t < run->ntasks; t++) {
		unsigned w = (unsigned)(t % fr->nw);
		struct task_msg msg = { t, t % count, 0 };
		struct iovec iov[3] = { { &msg, sizeof(msg) } };
		int n = 1, r;

		if (fr->m->ship_sequence) {
			/* The serialized sequence, as pickle(seq) on every call. */
			msg.payload_len = sizeof(count) + run->wl->blob_len;
			iov[1] = (struct iovec){ &count, sizeof(count) };
			iov[2] = (struct iovec){ run->wl->blob, run->wl->blob_len };
			n = 3;
		}
		run->submit_ns[t] = now_ns();
		if (gate_acquire(&fr->gate) < 0)
			return -ECANCELED;   /* the consumer failed and said why */
		r = io_write_all(fr->task_fd[w], iov, n, &fr->ctr->producer);
		if (r < 0) {
			snprintf(res->err, sizeof(res->err), "write task: %s", strerror(-r));
			atomic_store(&fr->producer_failed, true);
			return r;
		}
	}
	return 0;
}

int bench_fork_mode(struct bench_run *run, enum bench_mode mode, struct mode_result *res)
{
	const struct fork_mode *m = mode == MODE_COPY ? &bench_copy_mode :
				    mode == MODE_PROXY ? &bench_proxy_mode : &bench_pipe_mode;
	struct fork_run *fr = calloc(1, sizeof(*fr));
	int conn[BENCH_MAX_WORKERS];
	uint64_t t0 = now_ns();
	pthread_t th;
	bool failed = true;
	int r, r2;

	if (!fr)
		return -ENOMEM;
	fr->run = run;
	fr->m = m;
	fr->nw = run->opt->workers;
	for (unsigned i = 0; i < fr->nw; i++)
		fr->task_fd[i] = fr->res_fd[i] = conn[i] = -1;
	res->sys_what = "read/write/poll calls + gate waits/wakes";
	fr->ctr = counters_map();
	if (!fr->ctr) {
		r = -errno;
		snprintf(res->err, sizeof(res->err), "mmap: %s", strerror(errno));
		goto out;
	}
	if ((r = gate_init(&fr->gate, run->opt->depth)) < 0) {
		snprintf(res->err, sizeof(res->err), "gate: %s", strerror(-r));
		goto out_ctr;
	}
	/* Only the server (proxy) or the workers (pipe) may see the sequence. */
	if ((r = workload_set_inherit(run->wl, m->server || m->inherit_sequence)) < 0) {
		snprintf(res->err, sizeof(res->err), "madvise: %s", strerror(-r));
		goto out_gate;
	}
	if (m->server) {
		r = proxy_server_start(run->wl, fr->nw, conn, fr->ctr, &fr->server);
		if (r < 0) {
			snprintf(res->err, sizeof(res->err), "proxy server: %s", strerror(-r));
			goto out_gate;
		}
		if ((r = workload_set_inherit(run->wl, false)) < 0) {
			snprintf(res->err, sizeof(res->err), "madvise: %s", strerror(-r));
			goto out_stop;
		}
	}
	r = start_workers(fr, m->server ? conn : NULL, res);
	for (unsigned i = 0; i < fr->nw; i++)
		close_fd(&conn[i]);   /* the workers have their ends now */
	if (r < 0)
		goto out_stop;
	if ((r = pthread_create(&th, NULL, consumer_main, fr)) != 0) {
		r = -r;
		snprintf(res->err, sizeof(res->err), "pthread_create: %s", strerror(-r));
		goto out_stop;
	}
	res->setup_ns = now_ns() - t0;
	r = produce(fr, res);
	pthread_join(th, NULL);
	if (fr->err) {
		r = fr->err;
		snprintf(res->err, sizeof(res->err), "%s", fr->errmsg);
	}
	if (r < 0)
		goto out_stop;
	if ((r = measure_memory(fr, res)) < 0) {
		snprintf(res->err, sizeof(res->err), "reading /proc of a worker: %s",
			 strerror(-r));
		goto out_stop;
	}
	failed = false;
out_stop:
	r2 = stop_workers(fr, failed, res);
	if (r == 0)
		r = r2;
	if (r == 0) {
		res->checksum = fr->checksum;
		res->sys_producer = fr->ctr->producer + fr->gate.waits;
		res->sys_consumer = fr->ctr->consumer + fr->gate.wakes;
		res->sys_worker = fr->ctr->worker;
		res->sys_server = fr->ctr->server;
		res->nworkers = fr->nw;
		/* Round-robin: the first ntasks % nw workers get one more. */
		for (unsigned i = 0; i < fr->nw; i++)
			res->tasks_per_worker[i] = run->ntasks / fr->nw +
						   (i < run->ntasks % fr->nw);
		r = run_finish(run, res);
	}
out_gate:
	gate_destroy(&fr->gate);
out_ctr:
	counters_unmap(fr->ctr);
out:
	free(fr);
	return r;
}
