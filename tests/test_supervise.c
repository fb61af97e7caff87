/* SPDX-License-Identifier: MIT */
/*
 * Supervision: workers killed at random while tasks run, poison tasks, hung
 * tasks, a killed parent.  Every scenario runs with io_uring and with the
 * fallback (futex timeouts + pidfd polls), and both again without pidfds
 * (workers known by pid and polled with waitid, as under valgrind or on
 * Linux < 5.4: the test knob no_pidfd).
 */
#define TESTUTIL_POOL_KNOBS
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>

#include "arena.h"
#include "pool_test.h" /* test-only knobs (no_pidfd) */

#define REAP_BOUND_NS (20ll * 1000 * 1000 * 1000) /* no wait may be longer */

static struct arena *A;
static uint64_t NITEMS = 5000;
static int g_no_pidfd; /* the scenario runs without pidfds */
static int g_runs;     /* batches go in runs whatever the tasks' time */

/* arena_pool_create, through the no_pidfd knob when g_no_pidfd (then the
 * pool holds no pidfd at all: checked, a knob that did nothing fails) and
 * the runs knob when g_runs. */
static int create_pool(struct arena_pool **p, const struct arena_pool_opts *o)
{
	return pool_create_knobs(p, A, o, g_no_pidfd, g_runs);
}

/* Runs `call` without pidfds. */
#define NO_PIDFD(call) do { g_no_pidfd = 1; call; g_no_pidfd = 0; } while (0)
/* Runs `call` with its batches in runs: workers die inside runs. */
#define RUNS(call) do { g_runs = 1; call; g_runs = 0; } while (0)

static int setup(void **state)
{
	char buf[64];
	uint64_t i;

	assert_int_equal(arena_create(&A, NULL), 0);
	for (i = 0; i < NITEMS; i++) {
		int n = snprintf(buf, sizeof(buf), "item-%llu", (unsigned long long)i);

		assert_int_equal(arena_append(A, buf, (size_t)n, NULL), 0);
	}
	assert_int_equal(arena_seal(A), 0);
	return 0;
}

static int teardown(void **state)
{
	arena_close(A);
	return 0;
}

/* ---- chaos ---------------------------------------------------------------- */

struct chaos {
	struct arena_pool *p;
	unsigned workers;
	atomic_int stop;
	atomic_uint kills;
};

static void *killer(void *arg)
{
	struct chaos *c = arg;
	unsigned seed = 12345;

	while (!atomic_load(&c->stop)) {
		int pid = arena_pool_worker_pid(c->p, rand_r(&seed) % c->workers);

		if (pid > 0 && kill(pid, SIGKILL) == 0)
			atomic_fetch_add(&c->kills, 1);
		usleep(2000 + rand_r(&seed) % 3000);
	}
	return NULL;
}

/* A few microseconds of work, so that kills land inside tasks. */
static int busy_task(struct arena_task *t)
{
	uint64_t end = now_ns() + 3000;

	while (now_ns() < end)
		;
	return arena_task_get_item(t);
}

/* The two-thread shape: a producer thread submits tasks 0..n-1 in calls of
 * 1..200 entries (more than the depth: a reaper takes entries for it while
 * it waits), each bounded; a call that waited out its bound is a lost
 * wake-up (a call the reaper took from returns a count even then). */
struct feeder {
	struct arena_pool *p;
	uint64_t n;
	int r;            /* 0, or the first failure */
	int max_call;     /* the largest count one call returned */
};

static void *feed(void *arg)
{
	struct feeder *f = arg;
	struct arena_sqe *s = calloc(200, sizeof(*s));
	unsigned seed = 777;
	uint64_t sub = 0;

	if (!s) {
		f->r = -ENOMEM;
		return NULL;
	}
	while (sub < f->n && !f->r) {
		unsigned m = 1 + (unsigned)(rand_r(&seed) % 200), off = 0, k;

		if (m > f->n - sub)
			m = (unsigned)(f->n - sub);
		for (k = 0; k < m; k++)
			s[k] = (struct arena_sqe){ .index = (sub + k) % NITEMS, .user_data = sub + k };
		while (off < m) {
			uint64_t t0 = now_ns();
			int r = arena_pool_submit(f->p, s + off, m - off, REAP_BOUND_NS);

			if (now_ns() - t0 >= (uint64_t)REAP_BOUND_NS || r <= 0 ||
			    (unsigned)r > m - off) {
				f->r = r <= 0 ? (r ? r : -EPROTO) : -ETIMEDOUT;
				break;
			}
			f->max_call = r > f->max_call ? r : f->max_call;
			off += (unsigned)r;
		}
		sub += m;
	}
	free(s);
	return NULL;
}

static void run_chaos(uint32_t flags, uint64_t ntasks, int two_threads)
{
	struct arena_pool_opts o = { .flags = flags, .workers = 4, .depth = 64,
				     .max_attempts = 50, .task = busy_task };
	uint8_t *seen = calloc(ntasks, 1);
	struct arena_pool_stats st;
	struct arena_cqe c[64];
	struct chaos ch = { 0 };
	uint64_t sub = 0, got = 0, next_seq = 0;
	struct feeder fd = { 0 };
	int fds = count_fds();
	pthread_t th, fth;

	assert_non_null(seen);
	assert_int_equal(create_pool(&ch.p, &o), 0);
	ch.workers = o.workers;
	assert_int_equal(pthread_create(&th, NULL, killer, &ch), 0);
	if (two_threads) {
		fd.p = ch.p;
		fd.n = ntasks;
		sub = ntasks;   /* the feeder submits them all */
		assert_int_equal(pthread_create(&fth, NULL, feed, &fd), 0);
	}
	/* One thread both submits and reaps (or only reaps): the consumer
	 * never blocks for longer than REAP_BOUND_NS or the test fails. */
	while (got < ntasks) {
		int n;

		while (sub < ntasks) {
			struct arena_sqe s = { .index = sub % NITEMS, .user_data = sub };

			n = arena_pool_submit(ch.p, &s, 1, 0);
			if (n == -EAGAIN)
				break;
			assert_int_equal(n, 1);
			sub++;
		}
		n = arena_pool_reap(ch.p, c, 64, REAP_BOUND_NS);
		if (n <= 0)
			print_message("reap: %d %s after %llu\n", n, arena_strerror(n),
				      (unsigned long long)got);
		assert_true(n > 0);
		for (int k = 0; k < n; k++) {
			char want[64];
			int wl = snprintf(want, sizeof(want), "item-%llu",
					  (unsigned long long)(c[k].user_data % NITEMS));

			assert_true(c[k].user_data < ntasks);
			assert_int_equal(seen[c[k].user_data], 0); /* exactly once */
			seen[c[k].user_data] = 1;
			assert_int_equal(c[k].status, 0);
			assert_int_equal(c[k].len, wl);
			assert_memory_equal(c[k].data, want, (size_t)wl);
			if (flags & ARENA_POOL_ORDERED)
				assert_int_equal(c[k].seq, next_seq++);
			arena_pool_release(ch.p, &c[k]);
		}
		got += (uint64_t)n;
	}
	atomic_store(&ch.stop, 1);
	pthread_join(th, NULL);
	if (two_threads) {
		pthread_join(fth, NULL);
		if (fd.r)
			fail_msg("feeder: %d (%s)", fd.r, arena_strerror(fd.r));
		/* The reaper took entries for the waiting producer. */
		assert_true(fd.max_call > (int)o.depth);
	}
	assert_int_equal(arena_pool_stats(ch.p, &st), 0);
	assert_int_equal(st.reaped, ntasks);
	assert_int_equal(st.submitted, ntasks);
	assert_int_equal(arena_pool_stop(ch.p, ARENA_STOP_DRAIN, 10ll * 1000 * 1000 * 1000), 0);
	assert_int_equal(count_children(), 0);
	arena_pool_destroy(ch.p);
	assert_int_equal(count_fds(), fds);
	print_message("chaos flags=%u%s%s: %llu tasks, %u kills, %llu crashes seen, %llu re-run, "
		      "%llu restarts, uring=%d\n", flags, g_no_pidfd ? " no pidfd" : "",
		      two_threads ? " two threads" : "",
		      (unsigned long long)ntasks,
		      atomic_load(&ch.kills), (unsigned long long)st.crashes,
		      (unsigned long long)st.tasks_rerun,
		      (unsigned long long)st.workers_restarted, st.uring);
	assert_true(st.crashes > 0);
	assert_true(st.workers_restarted >= st.crashes);
	free(seen);
}

/* Under valgrind, every restart forks a process that valgrind runs too, and
 * kills come every 2-5 ms of the wall clock whatever the pace: the run's
 * length is in restarts, not tasks (30,000 tasks took 27-184 s a run with
 * 1,300-11,000 restarts on a 2-CPU virtual machine).  A few thousand tasks
 * still see hundreds of kills land in every state. */
static uint64_t chaos_tasks(void)
{
	return under_valgrind() ? 6000 : under_sanitizer() ? 30000 : 200000;
}

static void test_chaos_uring(void **state)
{
	run_chaos(0, chaos_tasks(), 0);
}

/* A producer thread whose batches the reaper takes from while workers die. */
static void test_chaos_two_threads(void **state)
{
	run_chaos(0, chaos_tasks() / 2, 1);
	run_chaos(ARENA_POOL_NO_URING | ARENA_POOL_ORDERED, chaos_tasks() / 2, 1);
}

static void test_chaos_fallback(void **state)
{
	run_chaos(ARENA_POOL_NO_URING, chaos_tasks(), 0);
}

static void test_chaos_ordered(void **state)
{
	run_chaos(ARENA_POOL_ORDERED, chaos_tasks() / 4, 0);
}

static void test_chaos_ordered_fallback(void **state)
{
	run_chaos(ARENA_POOL_ORDERED | ARENA_POOL_NO_URING, chaos_tasks() / 4, 0);
}

/* Without pidfds a death is seen up to a tick (10 ms) late: fewer tasks. */
static void test_chaos_no_pidfd(void **state)
{
	NO_PIDFD(run_chaos(0, chaos_tasks() / 4, 0));
}

static void test_chaos_no_pidfd_fallback(void **state)
{
	NO_PIDFD(run_chaos(ARENA_POOL_NO_URING, chaos_tasks() / 4, 0));
}

static void test_chaos_ordered_no_pidfd(void **state)
{
	NO_PIDFD(run_chaos(ARENA_POOL_ORDERED | ARENA_POOL_NO_URING, chaos_tasks() / 8, 0));
}

/* ---- poison and hang ------------------------------------------------------ */

static int poison_task(struct arena_task *t)
{
	if (t->index == 13 && t->op != 7)
		raise(SIGSEGV);
	if (t->index == 5 && t->op == 7)
		for (;;)
			pause();
	t->op = ARENA_OP_COPY;
	return arena_task_get_item(t);
}

static void run_poison(uint32_t flags, int hang)
{
	struct arena_pool_opts o = { .flags = flags, .workers = 2, .depth = 16,
				     .task = poison_task, .max_attempts = 3,
				     .task_deadline_ns = hang ? 200 * 1000 * 1000 : 0 };
	struct arena_pool *p;
	struct arena_pool_stats st;
	struct arena_cqe c[16];
	uint64_t got = 0, n_tasks = 40;
	int fds = count_fds(), bad = 0;
	uint64_t t0 = now_ns();

	assert_int_equal(create_pool(&p, &o), 0);
	for (uint64_t i = 0; i < n_tasks;) {
		struct arena_sqe s[16];
		/* With runs, every call as large as the room: the deadly task
		 * lands inside a run. */
		unsigned m = g_runs ? (unsigned)(n_tasks - i < 16 ? n_tasks - i : 16) : 1;
		int r;

		for (unsigned k = 0; k < m; k++)
			s[k] = (struct arena_sqe){ .index = i + k, .user_data = i + k,
						   .op = hang ? 7 : 0 };
		r = arena_pool_submit(p, s, m, 0);
		if (r > 0) {
			i += (uint64_t)r;
			continue;
		}
		assert_int_equal(r, -EAGAIN);
		{
			int n = arena_pool_reap(p, c, 16, REAP_BOUND_NS);

			if (n <= 0)
				print_message("reap: %d %s\n", n, arena_strerror(n));
			assert_true(n > 0);
			for (int k = 0; k < n; k++) {
				bad += c[k].status != 0;
				arena_pool_release(p, &c[k]);
			}
			got += (uint64_t)n;
		}
	}
	while (got < n_tasks) {
		int n = arena_pool_reap(p, c, 16, REAP_BOUND_NS);

		if (n <= 0)
			print_message("reap: %d %s after %llu\n", n, arena_strerror(n),
				      (unsigned long long)got);
		assert_true(n > 0);
		for (int k = 0; k < n; k++) {
			if (c[k].status) {
				bad++;
				if (c[k].index != (hang ? 5u : 13u))
					print_message("bad: index %llu status %d\n", (unsigned long long)c[k].index, c[k].status);
				assert_int_equal(c[k].index, hang ? 5 : 13);
				assert_int_equal(c[k].status, hang ? -ETIMEDOUT : -EOWNERDEAD);
				assert_null(c[k].data);
			}
			arena_pool_release(p, &c[k]);
		}
		got += (uint64_t)n;
	}
	assert_int_equal(bad, 1);
	assert_int_equal(arena_pool_stats(p, &st), 0);
	assert_int_equal(st.tasks_failed, 1);
	assert_int_equal(st.crashes, 3);
	assert_int_equal(st.tasks_rerun, 2);
	assert_int_equal(st.hangs_killed, hang ? 3 : 0);
	arena_pool_destroy(p);
	assert_int_equal(count_children(), 0);
	assert_int_equal(count_fds(), fds);
	print_message("%s flags=%u%s: %.1f ms\n", hang ? "hang" : "poison", flags,
		      g_no_pidfd ? " no pidfd" : "", (now_ns() - t0) / 1e6);
}

static void test_poison_uring(void **state) { run_poison(0, 0); }
static void test_poison_fallback(void **state) { run_poison(ARENA_POOL_NO_URING, 0); }
static void test_hang_uring(void **state) { run_poison(0, 1); }
static void test_hang_fallback(void **state) { run_poison(ARENA_POOL_NO_URING, 1); }
static void test_poison_no_pidfd(void **state) { NO_PIDFD(run_poison(0, 0)); }
static void test_poison_no_pidfd_fallback(void **state)
{
	NO_PIDFD(run_poison(ARENA_POOL_NO_URING, 0));
}
static void test_hang_no_pidfd(void **state) { NO_PIDFD(run_poison(0, 1)); }
static void test_hang_no_pidfd_fallback(void **state)
{
	NO_PIDFD(run_poison(ARENA_POOL_NO_URING, 1));
}

/* ---- no restart: tasks move to the survivors ------------------------------ */

static void run_no_restart(uint32_t flags)
{
	struct arena_pool_opts o = { .flags = flags | ARENA_POOL_NO_RESTART,
				     .workers = 3, .depth = 32 };
	struct arena_pool *p;
	struct arena_pool_stats st;
	struct arena_cqe c[32];
	uint64_t got = 0, n_tasks = 20000;
	uint8_t *seen = calloc(n_tasks, 1);
	int fds = count_fds();

	assert_int_equal(create_pool(&p, &o), 0);
	for (uint64_t i = 0; got < n_tasks;) {
		if (i < n_tasks) {
			/* With runs, calls as large as the depth: runs move to
			 * the survivors. */
			struct arena_sqe s[32];
			unsigned m = g_runs ? (unsigned)(n_tasks - i < 32 ? n_tasks - i : 32) : 1;
			int r;

			for (unsigned k = 0; k < m; k++)
				s[k] = (struct arena_sqe){ .index = (i + k) % NITEMS,
							   .user_data = i + k };
			r = arena_pool_submit(p, s, m, 0);
			if (r > 0) {
				if (i < n_tasks / 2 && i + (uint64_t)r >= n_tasks / 2)
					kill(arena_pool_worker_pid(p, 1), SIGKILL);
				i += (uint64_t)r;
				continue;
			}
		}
		int n = arena_pool_reap(p, c, 32, REAP_BOUND_NS);

		assert_true(n > 0);
		for (int k = 0; k < n; k++) {
			assert_int_equal(seen[c[k].user_data], 0);
			seen[c[k].user_data] = 1;
			assert_int_equal(c[k].status, 0);
			arena_pool_release(p, &c[k]);
		}
		got += (uint64_t)n;
	}
	/* The killed worker may have held nothing: wait until it is noticed. */
	for (int k = 0; k < 2000 && arena_pool_worker_pid(p, 1) != -ESRCH; k++) {
		assert_int_equal(arena_pool_reap(p, c, 32, 0), -EAGAIN);
		usleep(1000);
	}
	assert_int_equal(arena_pool_stats(p, &st), 0);
	assert_int_equal(st.workers_restarted, 0);
	assert_int_equal(st.crashes, 1);
	assert_int_equal(arena_pool_worker_pid(p, 1), -ESRCH);
	arena_pool_destroy(p);
	assert_int_equal(count_children(), 0);
	assert_int_equal(count_fds(), fds);
	free(seen);
}

static void test_no_restart_uring(void **state) { run_no_restart(0); }
static void test_no_restart_fallback(void **state) { run_no_restart(ARENA_POOL_NO_URING); }
static void test_no_restart_no_pidfd(void **state) { NO_PIDFD(run_no_restart(0)); }
static void test_no_restart_no_pidfd_fallback(void **state)
{
	NO_PIDFD(run_no_restart(ARENA_POOL_NO_URING));
}

/* ---- the same, workers killed inside runs of tasks -------------------------- */

static void test_poison_runs(void **state)
{
	RUNS(run_poison(0, 0));
	RUNS(run_poison(ARENA_POOL_NO_URING, 0));
	RUNS(NO_PIDFD(run_poison(0, 0)));
}

static void test_hang_runs(void **state)
{
	RUNS(run_poison(0, 1));
}

static void test_no_restart_runs(void **state)
{
	RUNS(run_no_restart(0));
	RUNS(run_no_restart(ARENA_POOL_NO_URING));
}

static void test_chaos_runs(void **state)
{
	RUNS(run_chaos(0, chaos_tasks() / 4, 1));
	RUNS(run_chaos(ARENA_POOL_NO_URING | ARENA_POOL_ORDERED, chaos_tasks() / 4, 1));
	RUNS(NO_PIDFD(run_chaos(0, chaos_tasks() / 8, 1)));
}


/*
 * No survivor: the worker dies inside a run (poison_task, index 13 of the run
 * 0..15) and is not replaced, so what is left of its run completes from our
 * record with -ECHILD: every task of it, once (requeue_one's
 * pool_complete_synthetic_run), not only the one in hand.
 */
static void run_no_survivor_runs(uint32_t flags)
{
	struct arena_pool_opts o = { .flags = flags | ARENA_POOL_NO_RESTART, .workers = 1,
				     .depth = 16, .task = poison_task, .max_attempts = 3 };
	struct arena_sqe s[16];
	struct arena_cqe c[16];
	struct arena_pool *p;
	uint8_t seen[16] = { 0 };
	unsigned got = 0, echild = 0;
	int r;

	g_runs = 1;
	assert_int_equal(create_pool(&p, &o), 0);
	g_runs = 0;
	for (unsigned k = 0; k < 16; k++)
		s[k] = (struct arena_sqe){ .index = k, .user_data = 100 + k };
	assert_int_equal(arena_pool_submit(p, s, 16, 0), 16);   /* one run of 16 */
	while (got < 16) {
		r = arena_pool_reap(p, c, 16, 2ll * 1000 * 1000 * 1000);
		if (r <= 0)
			print_message("reap: %d %s after %u\n", r, arena_strerror(r), got);
		assert_true(r > 0);
		for (int k = 0; k < r; k++) {
			assert_true(c[k].user_data >= 100 && c[k].user_data < 116);
			assert_int_equal(seen[c[k].user_data - 100]++, 0);
			assert_int_equal(c[k].index, c[k].user_data - 100);
			if (c[k].index < 13) {
				assert_int_equal(c[k].status, 0);
			} else {
				assert_int_equal(c[k].status, -ECHILD);
				echild++;
			}
			arena_pool_release(p, &c[k]);
		}
		got += (unsigned)r;
	}
	assert_int_equal(echild, 3);
	arena_pool_destroy(p);
	assert_int_equal(count_children(), 0);
}

static void test_no_survivor_runs(void **state)
{
	(void)state;
	run_no_survivor_runs(0);
	run_no_survivor_runs(ARENA_POOL_ORDERED | ARENA_POOL_NO_URING);
}

/* ---- the parent dies: its workers follow ---------------------------------- */

static int gone(pid_t pid)
{
	int st;

	/* We are the subreaper: orphaned workers become our children. */
	return waitpid(pid, &st, WNOHANG) == pid || (kill(pid, 0) < 0 && errno == ESRCH);
}

static void run_parent_death(uint32_t flags)
{
	int fd[2];
	pid_t mid, wp[4];

	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	assert_int_equal(pipe(fd), 0);
	mid = fork();
	assert_true(mid >= 0);
	if (mid == 0) {
		struct arena_pool_opts o = { .flags = flags, .workers = 4, .depth = 8 };
		struct arena_pool *p;

		close(fd[0]);
		if (create_pool(&p, &o) < 0)
			_exit(1);
		for (unsigned i = 0; i < 4; i++) {
			pid_t w = arena_pool_worker_pid(p, i);

			if (write(fd[1], &w, sizeof(w)) != sizeof(w))
				_exit(2);
		}
		/* Keep the workers busy, then wait to be killed. */
		for (uint64_t i = 0;; i++) {
			struct arena_sqe s = { .index = i % NITEMS };
			struct arena_cqe c[8];
			int n;

			if (arena_pool_submit(p, &s, 1, 0) != 1) {
				n = arena_pool_reap(p, c, 8, -1);
				for (int k = 0; k < n; k++)
					arena_pool_release(p, &c[k]);
			}
		}
	}
	close(fd[1]);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(read(fd[0], &wp[i], sizeof(wp[i])), sizeof(wp[i]));
	close(fd[0]);
	usleep(50000);
	kill(mid, SIGKILL);
	assert_int_equal(wait_code(mid), 128 + SIGKILL);
	uint64_t t0 = now_ns();
	for (unsigned i = 0; i < 4; i++) {
		while (!gone(wp[i])) {
			assert_true(now_ns() - t0 < 3000000000ull);
			usleep(1000);
		}
	}
	print_message("workers gone %.1f ms after the parent's death\n", (now_ns() - t0) / 1e6);
	/* The fork server follows too (reaped here, as the subreaper). */
	while (count_children() && now_ns() - t0 < 3000000000ull) {
		while (waitpid(-1, NULL, WNOHANG | __WALL) > 0)
			;
		usleep(1000);
	}
	if (count_children())
		system("ps -o pid,ppid,stat,comm --ppid $PPID >&2");
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	assert_int_equal(count_children(), 0);
}

static void test_parent_death(void **state) { run_parent_death(0); }
static void test_parent_death_fallback(void **state) { run_parent_death(ARENA_POOL_NO_URING); }
static void test_parent_death_no_pidfd(void **state) { NO_PIDFD(run_parent_death(0)); }
static void test_parent_death_no_pidfd_fallback(void **state)
{
	NO_PIDFD(run_parent_death(ARENA_POOL_NO_URING));
}

/* ---- stop without pidfds: drain runs everything, cancel ends at once ------ */

static int slow_task(struct arena_task *t)
{
	usleep(1000);
	return arena_task_get_item(t);
}

static void run_stop_no_pidfd(uint32_t flags, uint32_t stop)
{
	struct arena_pool_opts o = { .flags = flags, .workers = 2, .depth = 128,
				     .task = slow_task };
	struct arena_pool *p;
	struct arena_cqe c[64];
	uint64_t got = 0, ok = 0, cancelled = 0, n_tasks = 100;
	int fds = count_fds(), n;

	g_no_pidfd = 1;
	assert_int_equal(create_pool(&p, &o), 0);
	g_no_pidfd = 0;
	for (uint64_t i = 0; i < n_tasks; i++) {
		struct arena_sqe s = { .index = i, .user_data = i };

		assert_int_equal(arena_pool_submit(p, &s, 1, 0), 1);
	}
	assert_int_equal(arena_pool_stop(p, stop, REAP_BOUND_NS), 0);
	/* The workers are gone and reaped: no child but the fork server's
	 * (also gone after a stop). */
	assert_int_equal(count_children(), 0);
	assert_int_equal(arena_pool_worker_pid(p, 0), -ESRCH);
	while ((n = arena_pool_reap(p, c, 64, REAP_BOUND_NS)) > 0) {
		for (int k = 0; k < n; k++) {
			ok += c[k].status == 0;
			cancelled += c[k].status == -ECANCELED;
			arena_pool_release(p, &c[k]);
		}
		got += (uint64_t)n;
	}
	assert_int_equal(n, -ENODATA);
	assert_int_equal(got, n_tasks); /* exactly once each */
	if (stop == ARENA_STOP_DRAIN)
		assert_int_equal(ok, n_tasks);
	else
		assert_int_equal(ok + cancelled, n_tasks);
	arena_pool_destroy(p);
	assert_int_equal(count_fds(), fds);
}

static void test_stop_no_pidfd(void **state)
{
	run_stop_no_pidfd(0, ARENA_STOP_DRAIN);
	run_stop_no_pidfd(ARENA_POOL_NO_URING, ARENA_STOP_DRAIN);
	run_stop_no_pidfd(0, ARENA_STOP_CANCEL);
	run_stop_no_pidfd(ARENA_POOL_NO_URING, ARENA_STOP_CANCEL);
}

/* ---- io_uring really is used where it exists ------------------------------ */

static void test_uring_probe(void **state)
{
	struct arena_pool_opts o = { .workers = 1 };
	struct arena_pool_stats st;
	struct arena_pool *p;
	const char *env = getenv("ARENA_NO_URING");

	assert_int_equal(arena_pool_create(&p, A, &o), 0);
	arena_pool_stats(p, &st);
	arena_pool_destroy(p);
	if (env && *env && strcmp(env, "0")) {
		assert_int_equal(st.uring, 0);
		return;
	}
	if (!st.uring)
		skip(); /* io_uring disabled on this machine: fallback covered */
	o.flags = ARENA_POOL_NO_URING;
	assert_int_equal(arena_pool_create(&p, A, &o), 0);
	arena_pool_stats(p, &st);
	arena_pool_destroy(p);
	assert_int_equal(st.uring, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uring_probe),
		cmocka_unit_test(test_poison_uring),
		cmocka_unit_test(test_poison_fallback),
		cmocka_unit_test(test_hang_uring),
		cmocka_unit_test(test_hang_fallback),
		cmocka_unit_test(test_no_restart_uring),
		cmocka_unit_test(test_no_restart_fallback),
		cmocka_unit_test(test_parent_death),
		cmocka_unit_test(test_parent_death_fallback),
		cmocka_unit_test(test_chaos_uring),
		cmocka_unit_test(test_chaos_two_threads),
		cmocka_unit_test(test_chaos_fallback),
		cmocka_unit_test(test_chaos_ordered),
		cmocka_unit_test(test_chaos_ordered_fallback),
		cmocka_unit_test(test_poison_no_pidfd),
		cmocka_unit_test(test_poison_no_pidfd_fallback),
		cmocka_unit_test(test_hang_no_pidfd),
		cmocka_unit_test(test_hang_no_pidfd_fallback),
		cmocka_unit_test(test_no_restart_no_pidfd),
		cmocka_unit_test(test_no_restart_no_pidfd_fallback),
		cmocka_unit_test(test_parent_death_no_pidfd),
		cmocka_unit_test(test_parent_death_no_pidfd_fallback),
		cmocka_unit_test(test_stop_no_pidfd),
		cmocka_unit_test(test_chaos_no_pidfd),
		cmocka_unit_test(test_chaos_no_pidfd_fallback),
		cmocka_unit_test(test_chaos_ordered_no_pidfd),
		cmocka_unit_test(test_poison_runs),
		cmocka_unit_test(test_hang_runs),
		cmocka_unit_test(test_no_restart_runs),
		cmocka_unit_test(test_chaos_runs),
		cmocka_unit_test(test_no_survivor_runs),
	};

	const char *only = getenv("ARENA_TEST_FILTER");

	if (only)
		cmocka_set_test_filter(only);
	return cmocka_run_group_tests(tests, setup, teardown);
}
