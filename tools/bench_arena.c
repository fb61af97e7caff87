/* SPDX-License-Identifier: MIT */
/*
 * arena-bench, arena mode: the seed's experiment through libarena.  The
 * sequence is written once into a sealed memfd arena, the pool's workers map
 * it read-only and run the default task (arena_task_get_item, ARENA_OP_COPY:
 * copy item i into the result area); the producer submits indexes, a consumer
 * thread reaps and releases the results.  Only the public API is used.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <arena.h>

#include "bench.h"

/* Items per arena_append_many() call while building. */
#define APPEND_BATCH 1024
/* Waits are bounded so that a hang fails the run instead of blocking it. */
#define WAIT_SLICE_NS 200000000ll

struct arena_run {
	struct bench_run *run;
	struct arena_pool *pool;
	_Atomic bool producer_failed;
	/* written by the consumer, read after it is joined */
	uint64_t checksum;
	_Atomic int err;      /* also read by the producer, to stop waiting */
	char errmsg[200];     /* written before err */
};

static int build_arena(const struct workload *wl, struct arena **out)
{
	struct iovec iov[APPEND_BATCH];
	struct arena_create_opts co = { .name = "arena-bench" };
	struct arena *a;
	int r = arena_create(&a, &co);

	if (r < 0)
		return r;
	for (uint64_t i = 0; i < wl->count && r >= 0; ) {
		size_t n = 0;

		for (; n < APPEND_BATCH && i < wl->count; n++, i++)
			iov[n] = (struct iovec){ wl->blob + wl->off[i],
						 wl->off[i + 1] - wl->off[i] };
		r = arena_append_many(a, iov, n, NULL);
	}
	if (r >= 0)
		r = arena_seal(a);
	if (r < 0) {
		arena_close(a);
		return r;
	}
	*out = a;
	return 0;
}

static void consumer_fail(struct arena_run *ar, int err, const char *what)
{
	snprintf(ar->errmsg, sizeof(ar->errmsg), "%s: %s", what, arena_strerror(err));
	atomic_store(&ar->err, err);
}

static void *consumer_main(void *arg)
{
	struct arena_run *ar = arg;
	struct bench_run *run = ar->run;
	struct arena_cqe cqe[64];
	uint64_t got = 0, last = now_ns();

	while (got < run->ntasks) {
		int n = arena_pool_reap(ar->pool, cqe, 64, WAIT_SLICE_NS);

		if (n == -ETIMEDOUT) {
			if (atomic_load(&ar->producer_failed))
				break;
			if (now_ns() - last > BENCH_STALL_NS) {
				consumer_fail(ar, -ETIMEDOUT, "no completion for 30 s");
				break;
			}
			continue;
		}
		if (n < 0) {
			consumer_fail(ar, n, "arena_pool_reap");
			break;
		}
		last = now_ns();
		for (int i = 0; i < n; i++) {
			const struct arena_cqe *c = &cqe[i];
			uint64_t t = c->user_data;

			if (ar->err) {
				/* Failed already: only give the space back. */
			} else if (c->status < 0) {
				consumer_fail(ar, c->status, "task");
			} else if (t >= run->ntasks || run->done_ns[t] != 0 ||
				   c->index != t % run->wl->count) {
				consumer_fail(ar, -EBADMSG, "unknown or duplicate completion");
			} else {
				ar->checksum += fnv1a64(c->data, c->len);
				run->done_ns[t] = now_ns();
				got++;
			}
		}
		/* Failed or not, the space goes back. */
		arena_pool_release_many(ar->pool, cqe, (unsigned)n);
		if (ar->err)
			break;
		progress_tick(&run->pg, got);
	}
	return NULL;
}

/* The producer: one blocking submission per task, as the seed's loop does. */
static int produce(struct arena_run *ar, struct mode_result *res)
{
	struct bench_run *run = ar->run;

	for (uint64_t t = 0; t < run->ntasks; t++) {
		struct arena_sqe sqe = { .index = t % run->wl->count, .user_data = t,
					 .op = ARENA_OP_COPY };
		uint64_t t0 = now_ns();
		int r;

		run->submit_ns[t] = t0;
		for (;;) {
			r = arena_pool_submit(ar->pool, &sqe, 1, WAIT_SLICE_NS);
			if (r != -ETIMEDOUT)
				break;
			/* The consumer stopped: nobody will free a slot.  It
			 * says why, so return without a message. */
			if (atomic_load(&ar->err))
				return -ECANCELED;
			if (now_ns() - t0 > BENCH_STALL_NS)
				break;
		}
		if (r != 1) {
			snprintf(res->err, sizeof(res->err), "arena_pool_submit: %s",
				 arena_strerror(r < 0 ? r : -EIO));
			atomic_store(&ar->producer_failed, true);
			return r < 0 ? r : -EIO;
		}
	}
	return 0;
}

/*
 * Reads the memory of the workers alive now.  A worker may be dead (killed,
 * not yet replaced) or die while we read it: it is left out, and
 * res->mem_read says how many were read.  Means are over those.
 */
static void measure_memory(struct arena_pool *p, unsigned nw, struct mode_result *res)
{
	uint64_t sum = 0, seq = 0, hwm = 0;
	unsigned n = 0;

	for (unsigned i = 0; i < nw; i++) {
		int pid = arena_pool_worker_pid(p, i);
		struct proc_mem pm;
		uint64_t kb;

		if (pid < 0)
			continue; /* not running now */
		/* The arena's memfd mapping (build_arena names it). */
		if (proc_mem_read(pid, &pm) < 0 ||
		    proc_mapping_pss(pid, NULL, 0, "memfd:arena-bench", &kb) < 0)
			continue; /* gone meanwhile */
		if (pm.hwm_kb > hwm)
			hwm = pm.hwm_kb;
		sum += pm.pss_kb;
		seq += kb;
		n++;
	}
	res->mem_read = n;
	res->worker_hwm_kb = hwm;
	res->worker_pss_kb = n ? sum / n : 0;
	res->helpers_pss_kb = sum;
	res->seq_pss_kb = n ? seq / n : 0;
}

#define KILL_MAX_ATTEMPTS 50u  /* under --kill-ms: deaths a task may see */

/* --kill-ms: SIGKILLs one worker every kill_ms, round robin, until stopped. */
struct killer {
	struct arena_pool *pool;
	unsigned nw, ms, next;
	_Atomic bool stop;
	uint64_t kills;   /* read after the thread is joined */
};

/* wait: until it is dead (not reaped: WNOWAIT leaves that to the pool). */
static void kill_one(struct killer *k, bool wait)
{
	int pid = arena_pool_worker_pid(k->pool, k->next++ % k->nw);
	siginfo_t si;

	if (pid <= 0 || kill(pid, SIGKILL) != 0)
		return;
	k->kills++;
	if (wait)
		while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
			;
}

static void *killer_main(void *arg)
{
	struct killer *k = arg;
	struct timespec ts = { (time_t)(k->ms / 1000), (long)(k->ms % 1000) * 1000000 };

	while (!atomic_load(&k->stop)) {
		nanosleep(&ts, NULL);
		if (!atomic_load(&k->stop))
			kill_one(k, false);
	}
	return NULL;
}

int bench_arena(struct bench_run *run, struct mode_result *res)
{
	struct arena_run ar = { .run = run };
	struct arena_pool_opts po = {
		.workers = run->opt->workers,
		.depth = run->opt->depth,
		.task = arena_task_get_item,
		/* Under fire a task dies with its worker by our hand, not its
		 * own: the default of 3 deaths a task (a poison task) fails a
		 * task that was only unlucky, as one was under TSan on a loaded
		 * 2-CPU host with a kill every 2 ms. */
		.max_attempts = run->opt->kill_ms ? KILL_MAX_ATTEMPTS : 0,
	};
	struct arena_pool_stats st;
	struct arena *a = NULL;
	struct killer kl = { .nw = run->opt->workers, .ms = run->opt->kill_ms };
	uint64_t t0 = now_ns();
	pthread_t th, kth;
	bool killing = false;
	int r;

	res->sys_what = "futex waits+wakes (arena_pool_stats)";
	/* The workers need nothing but the arena: keep the heap copy out. */
	if ((r = workload_set_inherit(run->wl, false)) < 0) {
		snprintf(res->err, sizeof(res->err), "madvise: %s", strerror(-r));
		return r;
	}
	if ((r = build_arena(run->wl, &a)) < 0) {
		snprintf(res->err, sizeof(res->err), "building the arena: %s",
			 arena_strerror(r));
		return r;
	}
	fflush(NULL);   /* the pool forks */
	/* Created before the consumer thread: the pool forks its workers now. */
	if ((r = arena_pool_create(&ar.pool, a, &po)) < 0) {
		snprintf(res->err, sizeof(res->err), "arena_pool_create: %s",
			 arena_strerror(r));
		arena_close(a);
		return r;
	}
	if ((r = pthread_create(&th, NULL, consumer_main, &ar)) != 0) {
		snprintf(res->err, sizeof(res->err), "pthread_create: %s", strerror(r));
		arena_pool_destroy(ar.pool);
		arena_close(a);
		return -r;
	}
	res->setup_ns = now_ns() - t0;
	kl.pool = ar.pool;
	if (kl.ms)
		killing = pthread_create(&kth, NULL, killer_main, &kl) == 0;
	r = produce(&ar, res);
	pthread_join(th, NULL);
	if (killing) {
		atomic_store(&kl.stop, true);
		pthread_join(kth, NULL);
		kill_one(&kl, true); /* the worst moment: just before the reading */
	}
	res->kills = kl.kills;
	if (ar.err) {
		r = ar.err;
		snprintf(res->err, sizeof(res->err), "%s", ar.errmsg);
	}
	if (r == 0)
		measure_memory(ar.pool, run->opt->workers, res);
	if (r == 0 && (r = arena_pool_stats(ar.pool, &st)) < 0)
		snprintf(res->err, sizeof(res->err), "arena_pool_stats: %s", arena_strerror(r));
	if (r == 0) {
		/* Everything was reaped: the drain has nothing left to wait for. */
		r = arena_pool_stop(ar.pool, ARENA_STOP_DRAIN, -1);
		if (r < 0)
			snprintf(res->err, sizeof(res->err), "arena_pool_stop: %s",
				 arena_strerror(r));
	}
	/* Destroy cancels and reaps the workers on every path. */
	arena_pool_destroy(ar.pool);
	arena_close(a);
	if (r < 0)
		return r;
	res->checksum = ar.checksum;
	res->sys_producer = st.producer_waits + st.producer_wakes;
	res->sys_consumer = st.consumer_waits + st.consumer_wakes;
	res->sys_worker = st.worker_waits + st.worker_wakes;
	res->sys_server = 0;
	res->nworkers = run->opt->workers;
	res->crashes = st.crashes;
	res->tasks_rerun = st.tasks_rerun;
	for (unsigned i = 0; i < res->nworkers && i < 64; i++)
		res->tasks_per_worker[i] = st.tasks_per_worker[i];
	return run_finish(run, res);
}
