/* SPDX-License-Identifier: MIT */
/*
 * Worker processes: where they start from and what they inherit (fork
 * server, signals, fds, the init hook, argv), how their exits are read when
 * the application takes the status away (SIGCHLD ignored, another thread's
 * waitpid), a creating thread that exits, Ctrl-C, failed forks, a pidfd
 * that another thread's fd leaves no room for, deadline kills, the
 * io_uring's one owner, and the options' room to grow.  Every scenario that
 * supervises runs with io_uring and with the fallback.
 */
#define TESTUTIL_POOL_KNOBS
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "arena.h"
#include "channel.h"   /* the layout, to forge a deadline stamp */
#include "pool_test.h" /* test-only knobs (fail_starts, no_pidfd, spawn_race) */

#define WAIT_NS (20ll * 1000 * 1000 * 1000) /* no wait may be longer */

static struct arena *A;
static const uint64_t NITEMS = 2000;
static char g_build[PATH_MAX];

static const uint32_t MODES[2] = { 0, ARENA_POOL_NO_URING };
/* Where a scenario reads exits itself: modes 0..3, the last two without
 * pidfds (workers known by pid, polled with waitid: the no_pidfd knob). */
#define NMODES4 4
#define MODE_FLAGS(m) MODES[(m) & 1]
#define MODE_NO_PIDFD(m) ((m) >> 1)

/* arena_pool_create, through the no_pidfd knob when asked; such a pool
 * holds no pidfd (a knob that did nothing fails the test). */
static int create_mode(struct arena_pool **p, const struct arena_pool_opts *o, int no_pidfd)
{
	return pool_create_pidfd_or_not(p, A, o, no_pidfd);
}

static int setup(void **state)
{
	char buf[64];
	uint64_t i;

	(void)state;
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
	(void)state;
	arena_close(A);
	return 0;
}

/* Submits and reaps n tasks (default task); checks every result.  Returns
 * the number of completions with a status other than 0. */
static unsigned run_tasks(struct arena_pool *p, uint64_t n)
{
	uint64_t sub = 0, got = 0;
	unsigned bad = 0;
	struct arena_cqe c[32];

	while (got < n) {
		while (sub < n) {
			struct arena_sqe s = { .index = sub % NITEMS, .user_data = sub };
			int r = arena_pool_submit(p, &s, 1, 0);

			if (r == -EAGAIN)
				break;
			assert_int_equal(r, 1);
			sub++;
		}
		int r = arena_pool_reap(p, c, 32, WAIT_NS);

		if (r <= 0)
			fail_msg("reap: %d (%s) after %llu", r, arena_strerror(r),
				 (unsigned long long)got);
		for (int k = 0; k < r; k++) {
			if (c[k].status == 0) {
				char want[64];
				int wl = snprintf(want, sizeof(want), "item-%llu",
						  (unsigned long long)(c[k].user_data % NITEMS));

				assert_int_equal(c[k].len, wl);
				assert_memory_equal(c[k].data, want, (size_t)wl);
			} else {
				bad++;
			}
			arena_pool_release(p, &c[k]);
		}
		got += (uint64_t)r;
	}
	return bad;
}

static void stats(struct arena_pool *p, struct arena_pool_stats *st)
{
	assert_int_equal(arena_pool_stats(p, st), 0);
}

/* Waits until pid is a zombie (dead, not yet reaped by its parent, us). */
static void wait_zombie(pid_t pid)
{
	uint64_t t0 = now_ns();

	for (;;) {
		char name[16], buf[512];
		const char *st;

		snprintf(name, sizeof(name), "%d", (int)pid);
		st = proc_stat(name, buf, sizeof(buf));
		if (!st || *st == 'Z' || *st == 'X')
			return;
		assert_true(now_ns() - t0 < 5000000000ull);
		usleep(1000);
	}
}

/* ---- SIGCHLD ignored: the exit status is lost, not a crash --------------- */

/* 1 when every worker of p has exited (and been reaped by someone). */
static atomic_int g_stolen;

static int workers_gone(pid_t *pids, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (kill(pids[i], 0) == 0)
			return 0;
	return 1;
}

/* A drain stop whose workers exit while nobody in the pool looks (so that
 * whoever else reaps children gets there first), then the stop's end. */
static void stop_unwatched(struct arena_pool *p, unsigned nworkers, int stolen_want)
{
	pid_t pids[8];
	uint64_t t0 = now_ns();
	int r;

	for (unsigned i = 0; i < nworkers; i++)
		pids[i] = arena_pool_worker_pid(p, i);
	r = arena_pool_stop(p, ARENA_STOP_DRAIN, 0);
	assert_true(r == 0 || r == -ETIMEDOUT);
	while (!(stolen_want ? atomic_load(&g_stolen) >= stolen_want
			     : workers_gone(pids, nworkers)) && now_ns() - t0 < 10000000000ull)
		usleep(1000);
	assert_int_equal(arena_pool_stop(p, ARENA_STOP_DRAIN, WAIT_NS), 0);
}

static void test_sigchld_ignored(void **state)
{
	(void)state;
	for (int m = 0; m < NMODES4; m++) {
		struct arena_pool_opts o = { .flags = MODE_FLAGS(m), .workers = 2 };
		struct sigaction ign = { .sa_handler = SIG_IGN }, old;
		struct arena_pool_stats st;
		struct arena_pool *p;
		int fds = count_fds();

		assert_int_equal(sigaction(SIGCHLD, &ign, &old), 0);
		assert_int_equal(create_mode(&p, &o, MODE_NO_PIDFD(m)), 0);
		assert_int_equal(run_tasks(p, 1000), 0);
		stop_unwatched(p, 2, 0);
		stats(p, &st);
		arena_pool_destroy(p);
		sigaction(SIGCHLD, &old, NULL);
		print_message("SIGCHLD ignored, mode %d: %llu crashes, %llu restarts\n", m,
			      (unsigned long long)st.crashes,
			      (unsigned long long)st.workers_restarted);
		assert_int_equal(st.crashes, 0);
		assert_int_equal(st.workers_restarted, 0);
		assert_int_equal(count_children(), 0);
		assert_int_equal(count_fds(), fds);
	}
}

/* ---- another thread reaps every child it can ------------------------------ */

static atomic_int g_reaper_stop;

static void *waitpid_loop(void *arg)
{
	(void)arg;
	/* Blocking: it is woken at once by every exit, before the pool. */
	while (!atomic_load(&g_reaper_stop)) {
		if (waitpid(-1, NULL, 0) > 0)
			atomic_fetch_add(&g_stolen, 1);
		else
			usleep(50);
	}
	return NULL;
}

static void test_waitpid_thread(void **state)
{
	(void)state;
	for (int m = 0; m < NMODES4; m++) {
		int stolen = 0;

		/* The scenario needs the thread to win the race for both exits;
		 * under load the pool's own look may win one.  Every attempt
		 * must count no crash and no restart; one at least must have
		 * lost both exit statuses to the thread. */
		for (int attempt = 0; attempt < 5 && stolen < 2; attempt++) {
			struct arena_pool_opts o = { .flags = MODE_FLAGS(m), .workers = 2 };
			struct arena_pool_stats st;
			struct arena_pool *p;
			pthread_t th;

			atomic_store(&g_reaper_stop, 0);
			atomic_store(&g_stolen, 0);
			assert_int_equal(create_mode(&p, &o, MODE_NO_PIDFD(m)), 0);
			assert_int_equal(pthread_create(&th, NULL, waitpid_loop, NULL), 0);
			assert_int_equal(run_tasks(p, 1000), 0);
			stop_unwatched(p, 2, 2);
			stats(p, &st);
			arena_pool_destroy(p);
			usleep(2000);
			atomic_store(&g_reaper_stop, 1);
			pthread_join(th, NULL);
			stolen = atomic_load(&g_stolen);
			print_message("waitpid(-1) thread, mode %d: %d exits taken by it, %llu crashes, "
				      "%llu restarts\n", m, stolen,
				      (unsigned long long)st.crashes,
				      (unsigned long long)st.workers_restarted);
			assert_int_equal(st.crashes, 0);
			assert_int_equal(st.workers_restarted, 0);
			assert_int_equal(count_children(), 0);
		}
		assert_true(stolen >= 2);
	}
}

/* ---- the thread that created the pool exits ------------------------------- */

struct creator {
	uint32_t flags;
	struct arena_pool *p;
	int r;
};

static void *create_in_thread(void *arg)
{
	struct creator *c = arg;
	struct arena_pool_opts o = { .flags = c->flags, .workers = 2 };

	c->r = arena_pool_create(&c->p, A, &o);
	return NULL;
}

static void test_creator_thread_exits(void **state)
{
	(void)state;
	for (int m = 0; m < 2; m++) {
		struct creator c = { .flags = MODES[m] };
		struct arena_pool_stats st;
		pthread_t th;
		pid_t pid0, pid1;

		assert_int_equal(pthread_create(&th, NULL, create_in_thread, &c), 0);
		pthread_join(th, NULL);
		assert_int_equal(c.r, 0);
		pid0 = arena_pool_worker_pid(c.p, 0);
		pid1 = arena_pool_worker_pid(c.p, 1);
		assert_true(pid0 > 0 && pid1 > 0);
		/* The creating thread is gone; the workers must not follow it. */
		usleep(100000);
		assert_int_equal(run_tasks(c.p, 500), 0);
		stats(c.p, &st);
		assert_int_equal(st.crashes, 0);
		assert_int_equal(arena_pool_worker_pid(c.p, 0), pid0);
		assert_int_equal(arena_pool_worker_pid(c.p, 1), pid1);
		/* A replacement started now (the server is the creator thread's
		 * child too) lives as well. */
		kill(pid0, SIGKILL);
		assert_int_equal(run_tasks(c.p, 500), 0);
		usleep(100000);
		assert_int_equal(run_tasks(c.p, 500), 0);
		stats(c.p, &st);
		assert_int_equal(st.crashes, 1);
		assert_int_equal(arena_pool_stop(c.p, ARENA_STOP_DRAIN, WAIT_NS), 0);
		arena_pool_destroy(c.p);
		assert_int_equal(count_children(), 0);
	}
}

/* ---- the init hook -------------------------------------------------------- */

static int g_init_id = -1;      /* set in the worker by the hook */
static _Atomic unsigned *g_init_calls;

static int init_hook(void *arg, unsigned worker)
{
	if (arg != (void *)&g_init_id)
		return -EINVAL;
	g_init_id = (int)worker + 1000;
	atomic_fetch_add(&g_init_calls[worker], 1);
	return 0;
}

/* Result: the id the hook set in this process. */
static int init_task(struct arena_task *t)
{
	if (t->out_cap < sizeof(int))
		return -EMSGSIZE;
	memcpy(t->out, &g_init_id, sizeof(int));
	return (int)sizeof(int);
}

static void test_worker_init(void **state)
{
	(void)state;
	g_init_calls = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(g_init_calls != MAP_FAILED);
	for (int m = 0; m < 2; m++) {
		struct arena_pool_opts o = { .flags = MODES[m], .workers = 2, .task = init_task,
					     .worker_init = init_hook,
					     .worker_init_arg = &g_init_id };
		struct arena_pool *p;
		struct arena_cqe c;

		memset((void *)g_init_calls, 0, 4096);
		assert_int_equal(arena_pool_create(&p, A, &o), 0);
		for (int round = 0; round < 2; round++) {
			for (int k = 0; k < 50; k++) {
				int id;

				assert_int_equal(arena_pool_submit1(p, (uint64_t)k, (uint64_t)k), 0);
				assert_int_equal(arena_pool_reap(p, &c, 1, WAIT_NS), 1);
				assert_int_equal(c.status, 0);
				assert_int_equal(c.len, sizeof(int));
				memcpy(&id, c.data, sizeof(int));
				assert_int_equal(id, (int)c.worker + 1000);
				arena_pool_release(p, &c);
			}
			if (round == 0) {
				/* The replacement runs the hook too. */
				pid_t pid = arena_pool_worker_pid(p, 1);

				kill(pid, SIGKILL);
				while (arena_pool_worker_pid(p, 1) == pid ||
				       arena_pool_worker_pid(p, 1) < 0) {
					arena_pool_reap(p, &c, 1, 1000000);
					usleep(1000);
				}
			}
		}
		assert_int_equal(arena_pool_stop(p, ARENA_STOP_DRAIN, WAIT_NS), 0);
		arena_pool_destroy(p);
		assert_int_equal(atomic_load(&g_init_calls[0]), 1);
		assert_int_equal(atomic_load(&g_init_calls[1]), 2);
		assert_int_equal(g_init_id, -1); /* never called in this process */
	}
	munmap((void *)g_init_calls, 4096);
}

/* A hook that fails: the worker never runs a task, its slot is given up
 * after a few tries and its tasks go to the other worker. */
static int init_fails_for_1(void *arg, unsigned worker)
{
	(void)arg;
	return worker == 1 ? -EIO : 0;
}

static void test_worker_init_fails(void **state)
{
	struct arena_pool_opts o = { .workers = 2, .worker_init = init_fails_for_1 };
	struct arena_pool_stats st;
	struct arena_pool *p;

	(void)state;
	assert_int_equal(arena_pool_create(&p, A, &o), 0);
	assert_int_equal(run_tasks(p, 500), 0);
	stats(p, &st);
	assert_int_equal(st.tasks_per_worker[1], 0);
	arena_pool_destroy(p);
	assert_int_equal(count_children(), 0);
}

/* ---- signals: ignored stay ignored, caught are reset, Ctrl-C is ignored --- */

static void on_usr2(int sig) { (void)sig; }

/* Result: one byte of flags about this process's dispositions. */
static int sig_task(struct arena_task *t)
{
	struct sigaction sa;
	uint8_t f = 0;

	sigaction(SIGUSR1, NULL, &sa);
	f |= sa.sa_handler == SIG_IGN ? 1 : 0;
	sigaction(SIGUSR2, NULL, &sa);
	f |= sa.sa_handler == SIG_DFL ? 2 : 0;
	sigaction(SIGINT, NULL, &sa);
	f |= sa.sa_handler == SIG_IGN ? 4 : 0;
	sigaction(SIGPIPE, NULL, &sa);
	f |= sa.sa_handler == SIG_IGN ? 8 : 0;
	*(uint8_t *)t->out = f;
	return 1;
}

static void check_sig_flags(struct arena_pool *p)
{
	struct arena_cqe c;

	for (int k = 0; k < 20; k++) {
		assert_int_equal(arena_pool_submit1(p, (uint64_t)k, 0), 0);
		assert_int_equal(arena_pool_reap(p, &c, 1, WAIT_NS), 1);
		assert_int_equal(c.status, 0);
		assert_int_equal(c.len, 1);
		if (*(const uint8_t *)c.data != 15)
			print_message("worker dispositions: %#x (want 0xf)\n",
				      *(const uint8_t *)c.data);
		assert_int_equal(*(const uint8_t *)c.data, 15);
		arena_pool_release(p, &c);
	}
}

static void test_signal_dispositions(void **state)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, h = { .sa_handler = on_usr2 };
	struct sigaction o1, o2, o3;
	struct arena_pool_opts o = { .workers = 2, .task = sig_task };
	struct arena_pool *p;
	struct arena_cqe c;
	pid_t pid;

	(void)state;
	sigaction(SIGUSR1, &ign, &o1);
	sigaction(SIGUSR2, &h, &o2);
	sigaction(SIGPIPE, &ign, &o3);
	assert_int_equal(arena_pool_create(&p, A, &o), 0);
	check_sig_flags(p);
	/* A replacement starts with the same dispositions. */
	pid = arena_pool_worker_pid(p, 0);
	kill(pid, SIGKILL);
	while (arena_pool_worker_pid(p, 0) == pid || arena_pool_worker_pid(p, 0) < 0) {
		arena_pool_reap(p, &c, 1, 1000000);
		usleep(1000);
	}
	check_sig_flags(p);
	arena_pool_destroy(p);
	sigaction(SIGUSR1, &o1, NULL);
	sigaction(SIGUSR2, &o2, NULL);
	sigaction(SIGPIPE, &o3, NULL);
}

static volatile sig_atomic_t g_sigints;

static void on_sigint(int sig)
{
	(void)sig;
	g_sigints++;
}

/* In a child of its own process group: Ctrl-C reaches every process of the
 * group; the workers must not die of it. */
static int ctrl_c_child(uint32_t flags)
{
	struct arena_pool_opts o = { .flags = flags, .workers = 2 };
	struct sigaction sa = { .sa_handler = on_sigint };
	struct arena_pool_stats st;
	struct arena_pool *p;

	if (setpgid(0, 0) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
		return 10;
	if (arena_pool_create(&p, A, &o) < 0)
		return 11;
	for (int k = 0; k < 2; k++) {
		uint64_t sub = 0, got = 0;
		struct arena_cqe c[16];

		/* Tasks in flight while the signal comes. */
		while (got < 300) {
			struct arena_sqe s = { .index = sub % NITEMS };
			int r;

			if (sub < 300 && arena_pool_submit(p, &s, 1, 0) == 1) {
				if (++sub == 100)
					kill(0, SIGINT);
				continue;
			}
			r = arena_pool_reap(p, c, 16, WAIT_NS);
			if (r <= 0)
				return 12;
			for (int i = 0; i < r; i++) {
				if (c[i].status)
					return 13;
				arena_pool_release(p, &c[i]);
			}
			got += (uint64_t)r;
		}
		usleep(20000);
	}
	if (arena_pool_stats(p, &st) < 0)
		return 14;
	if (st.crashes)
		return 15;
	if (g_sigints != 2)
		return 16;
	if (arena_pool_stop(p, ARENA_STOP_DRAIN, WAIT_NS) < 0)
		return 17;
	arena_pool_destroy(p);
	return 0;
}

static void test_ctrl_c(void **state)
{
	(void)state;
	for (int m = 0; m < 2; m++) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0)
			_exit(ctrl_c_child(MODES[m]));
		assert_int_equal(wait_code(pid), 0);
	}
}

/* ---- fds a worker holds --------------------------------------------------- */

static ino_t fd_inode(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* 1 when process pid has an fd whose link is `want` ("pipe:[123]"). */
static int has_fd_link(pid_t pid, const char *want, int *uring)
{
	char dir[64], path[128], link[256];
	int found = 0, fd;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	for (fd = 0; fd < 1024; fd++) {
		ssize_t n;

		snprintf(path, sizeof(path), "%s/%d", dir, fd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (!strcmp(link, want))
			found = 1;
		if (strstr(link, "io_uring"))
			*uring = 1;
	}
	return found;
}

static int maps_have(pid_t pid, const char *what)
{
	char path[64], line[512];
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, what))
			found = 1;
	fclose(f);
	return found;
}

static void test_worker_fds(void **state)
{
	(void)state;
	for (int m = 0; m < 2; m++) {
		int app[2], kept[2];
		char app_link[64], kept_link[64];
		struct arena_pool_stats st;
		struct arena_pool *p;

		assert_int_equal(pipe(app), 0);
		assert_int_equal(pipe(kept), 0);
		snprintf(app_link, sizeof(app_link), "pipe:[%lu]", (unsigned long)fd_inode(app[1]));
		snprintf(kept_link, sizeof(kept_link), "pipe:[%lu]", (unsigned long)fd_inode(kept[0]));
		{
			struct arena_pool_opts o = { .flags = MODES[m], .workers = 2,
						     .keep_fds = &kept[0], .nkeep_fds = 1 };

			assert_int_equal(arena_pool_create(&p, A, &o), 0);
		}
		stats(p, &st);
		for (unsigned i = 0; i < 2; i++) {
			pid_t pid = arena_pool_worker_pid(p, i);
			int uring = 0;

			assert_true(pid > 0);
			assert_int_equal(has_fd_link(pid, app_link, &uring), 0);
			assert_int_equal(has_fd_link(pid, kept_link, &uring), 1);
			assert_int_equal(uring, 0);
			assert_int_equal(maps_have(pid, "io_uring"), 0);
			assert_int_equal(maps_have(pid, "arena-channel"), 1);
		}
		/* The application's pipe sees EOF when it closes its write end:
		 * no worker (nor the fork server) holds a copy. */
		close(app[1]);
		{
			struct pollfd pfd = { .fd = app[0], .events = POLLIN };
			char b;

			assert_int_equal(poll(&pfd, 1, 5000), 1);
			assert_int_equal(read(app[0], &b, 1), 0);
		}
		assert_int_equal(run_tasks(p, 200), 0);
		arena_pool_destroy(p);
		close(app[0]);
		close(kept[0]);
		close(kept[1]);
	}
}

/* ---- exec'd workers: argv is copied at create ----------------------------- */

static void test_worker_argv_copied(void **state)
{
	char path[PATH_MAX];
	char *argv[3];
	struct arena_pool_opts o = { .workers = 1 };
	struct arena_pool_stats st;
	struct arena_pool *p;
	struct arena_cqe c;
	pid_t pid;

	(void)state;
	if ((size_t)snprintf(path, sizeof(path), "%.4000s/tools/arena-worker", g_build) >=
	    sizeof(path) || access(path, X_OK) != 0)
		skip();
	argv[0] = strdup(path);
	argv[1] = strdup("--task");
	argv[2] = NULL;
	/* "--task" without a value would make the worker exit 2: only the
	 * first argv is valid; fix it to { path } before create. */
	free(argv[1]);
	argv[1] = NULL;
	o.worker_path = argv[0];
	o.worker_argv = argv;
	assert_int_equal(arena_pool_create(&p, A, &o), 0);
	assert_int_equal(run_tasks(p, 100), 0);
	/* The caller's memory changes after create: a replacement must not
	 * see it. */
	argv[1] = "--no-such-option";
	memset(argv[0], 'x', strlen(argv[0]));
	pid = arena_pool_worker_pid(p, 0);
	kill(pid, SIGKILL);
	assert_int_equal(run_tasks(p, 300), 0);
	while (arena_pool_worker_pid(p, 0) == pid) {
		arena_pool_reap(p, &c, 1, 1000000);
		usleep(1000);
	}
	assert_int_equal(run_tasks(p, 100), 0);
	stats(p, &st);
	assert_int_equal(st.crashes, 1);
	assert_int_equal(st.workers_restarted, 1);
	assert_true(arena_pool_worker_pid(p, 0) > 0);
	arena_pool_destroy(p);
	free(argv[0]);
	assert_int_equal(count_children(), 0);
}

/* ---- failed forks are retried --------------------------------------------- */

static void run_fork_fails(uint32_t flags, unsigned workers, int no_pidfd)
{
	struct arena_pool_test_opts t = {
		.o = { .flags = flags | ARENA_POOL_TEST_OPTS, .workers = workers, .depth = 16 },
		.fail_starts = 4,
		.no_pidfd = (uint32_t)no_pidfd,
	};
	struct arena_pool_stats st;
	struct arena_pool *p;
	struct arena_cqe c;
	pid_t pid;

	assert_int_equal(arena_pool_create(&p, A, &t.o), 0);
	assert_int_equal(run_tasks(p, 100), 0);
	pid = arena_pool_worker_pid(p, 0);
	kill(pid, SIGKILL);
	/* Every task completes, none with -ECHILD: the slot waits for its
	 * replacement (or its tasks run on the survivor). */
	assert_int_equal(run_tasks(p, 2000), 0);
	while (arena_pool_worker_pid(p, 0) < 0 || arena_pool_worker_pid(p, 0) == pid) {
		arena_pool_reap(p, &c, 1, 1000000);
		usleep(1000);
	}
	assert_int_equal(run_tasks(p, 200), 0);
	stats(p, &st);
	assert_int_equal(st.crashes, 1);
	assert_int_equal(st.workers_restarted, 1);
	assert_int_equal(arena_pool_stop(p, ARENA_STOP_DRAIN, WAIT_NS), 0);
	arena_pool_destroy(p);
	assert_int_equal(count_children(), 0);
}

static void test_fork_fails_retried(void **state)
{
	(void)state;
	for (int m = 0; m < NMODES4; m++) {
		run_fork_fails(MODE_FLAGS(m), 1, MODE_NO_PIDFD(m));
		run_fork_fails(MODE_FLAGS(m), 2, MODE_NO_PIDFD(m));
	}
}

/* ---- the fork server dies or hangs: the parent goes on ------------------ */

/* The fork server: our child that is not one of p's workers. */
static pid_t find_server(struct arena_pool *p, unsigned nworkers)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = -1, me = getpid();

	assert_non_null(d);
	while ((e = readdir(d))) {
		int pid = atoi(e->d_name), mine = 0;

		if (pid <= 0 || proc_ppid(e->d_name) != me)
			continue;
		for (unsigned i = 0; i < nworkers; i++)
			mine |= arena_pool_worker_pid(p, i) == pid;
		if (!mine)
			found = pid;
	}
	closedir(d);
	return found;
}

static void run_server_lost(uint32_t flags, unsigned workers, int how, int no_pidfd)
{
	struct arena_pool_opts o = { .flags = flags, .workers = workers, .depth = 16 };
	struct arena_pool_stats st;
	struct arena_pool *p;
	struct arena_cqe c[16];
	uint64_t t0;
	pid_t srv, pid;

	assert_int_equal(create_mode(&p, &o, no_pidfd), 0);
	assert_int_equal(run_tasks(p, 100), 0);
	srv = find_server(p, workers);
	assert_true(srv > 0);
	kill(srv, how);
	pid = arena_pool_worker_pid(p, 0);
	kill(pid, SIGKILL);
	t0 = now_ns();
	if (workers > 1) {
		/* No replacement: the survivor runs everything. */
		assert_int_equal(run_tasks(p, 1000), 0);
		while (arena_pool_worker_pid(p, 0) != -ESRCH) {
			arena_pool_reap(p, c, 16, 1000000);
			assert_true(now_ns() - t0 < 30000000000ull);
		}
		assert_int_equal(run_tasks(p, 100), 0);
	} else {
		/* No worker left: tasks complete with -ECHILD, then submit
		 * says so; nothing hangs. */
		struct arena_sqe s = { .index = 1 };
		int r;

		while ((r = arena_pool_submit(p, &s, 1, 0)) == 1 || r == -EAGAIN) {
			int n = arena_pool_reap(p, c, 16, WAIT_NS);

			assert_true(n > 0);
			for (int k = 0; k < n; k++) {
				assert_true(c[k].status == 0 || c[k].status == -ECHILD);
				arena_pool_release(p, &c[k]);
			}
			assert_true(now_ns() - t0 < 30000000000ull);
		}
		assert_int_equal(r, -ECHILD);
	}
	stats(p, &st);
	assert_int_equal(st.crashes, 1);
	assert_int_equal(st.workers_restarted, 0);
	assert_int_equal(arena_pool_worker_pid(p, 0), -ESRCH);
	print_message("fork server %s, flags=%u%s, %u worker(s): slot given up after %.1f ms\n",
		      how == SIGKILL ? "killed" : "stopped", flags, no_pidfd ? " no pidfd" : "",
		      workers, (now_ns() - t0) / 1e6);
	arena_pool_destroy(p);
	assert_int_equal(count_children(), 0);
}

static void test_server_lost(void **state)
{
	(void)state;
	for (int m = 0; m < NMODES4; m++) {
		run_server_lost(MODE_FLAGS(m), 2, SIGKILL, MODE_NO_PIDFD(m));
		run_server_lost(MODE_FLAGS(m), 1, SIGKILL, MODE_NO_PIDFD(m));
	}
	/* A server that stops answering: the restart waits FSRV_TIMEOUT_MS,
	 * then the server is killed and the slot given up. */
	run_server_lost(0, 2, SIGSTOP, 0);
	run_server_lost(0, 2, SIGSTOP, 1);
}

/* ---- another thread takes the fd kept for a worker's pidfd -------------- */

/*
 * The spawn_race knob plays a thread of the application that opens fds while
 * a worker starts: after the fork server answered and before the answer is
 * received, it takes every free fd (dup until EMFILE under a lowered
 * RLIMIT_NOFILE), so the kernel drops the pidfd the answer carries
 * (MSG_CTRUNC).  With hold it keeps them until the test gives them back
 * (what the start does next then needs no fd), else it closes them right
 * after the receipt.  It waits delay_us first: the worker just started runs
 * meanwhile.  No cmocka assert in here: the pool's locks are held.
 */
struct fd_thief {
	int armed;  /* the next start is raced */
	int hold;
	unsigned delay_us;
	int fired;  /* starts raced */
	int err;    /* errno of the dup that failed */
	int n, taken;  /* fds held; the most held */
	int fds[4096];
	struct rlimit old;
};

static int highest_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int hi = -1;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) > hi)
			hi = atoi(e->d_name);
	closedir(d);
	return hi;
}

static void fds_give_back(struct fd_thief *t)
{
	while (t->n > 0)
		close(t->fds[--t->n]);
	if (t->fired)
		setrlimit(RLIMIT_NOFILE, &t->old);
}

static void fds_steal(void *arg, int received)
{
	struct fd_thief *t = arg;
	struct rlimit lim;
	int fd;

	if (received) {
		if (!t->hold)
			fds_give_back(t);
		return;
	}
	if (!t->armed)
		return;
	t->armed = 0;
	t->fired++;
	if (t->delay_us)
		usleep(t->delay_us);
	if (getrlimit(RLIMIT_NOFILE, &t->old) < 0)
		return;
	lim = t->old;
	lim.rlim_cur = (rlim_t)highest_fd() + 8;
	if (setrlimit(RLIMIT_NOFILE, &lim) < 0)
		return;
	errno = 0;
	while (t->n < (int)(sizeof(t->fds) / sizeof(t->fds[0])) && (fd = dup(2)) >= 0)
		t->fds[t->n++] = fd;
	t->err = errno;
	t->taken = t->n;
}

/* Our children that are neither the fork server nor one of p's workers. */
static int strangers(struct arena_pool *p, unsigned nworkers, pid_t srv)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t me = getpid();
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		int pid = atoi(e->d_name), known = pid == srv;

		if (pid <= 0 || proc_ppid(e->d_name) != me)
			continue;
		for (unsigned i = 0; i < nworkers; i++)
			known |= arena_pool_worker_pid(p, i) == pid;
		if (!known) {
			print_message("  child %d: neither the fork server nor a worker\n", pid);
			n++;
		}
	}
	closedir(d);
	return n;
}

static void run_pidfd_dropped(uint32_t flags, int no_pidfd)
{
	static struct fd_thief th; /* 16 KiB: not on the stack */
	struct arena_pool_test_opts t = {
		.o = { .flags = flags | ARENA_POOL_TEST_OPTS, .workers = 2, .depth = 16 },
		.no_pidfd = (uint32_t)no_pidfd,
		.spawn_race = fds_steal,
		.spawn_race_arg = &th,
	};
	struct arena_pool_stats st;
	struct arena_pool *p = NULL;
	struct arena_cqe c[16];
	int base = count_fds(), r, kids;
	unsigned sub = 0, got = 0, by_unseen = 0;
	uint32_t seen = 0;
	uint64_t t0;
	pid_t pid, srv;

	/* The first worker's start: without pidfds the answer carries no fd
	 * and the start succeeds; with them it fails and leaves nothing. */
	memset(&th, 0, sizeof(th));
	th.armed = 1;
	th.hold = !no_pidfd;
	r = arena_pool_create(&p, A, &t.o);
	fds_give_back(&th);
	kids = count_children();
	print_message("pidfd dropped, flags=%u%s: create %d (%s) with %d fd(s) taken, %d child(ren)\n",
		      flags, no_pidfd ? " no pidfd" : "", r, r ? arena_strerror(r) : "ok",
		      th.taken, kids);
	assert_int_equal(th.fired, 1);
	assert_int_equal(th.err, EMFILE);
	assert_true(th.taken > 0);
	if (no_pidfd) {
		assert_int_equal(r, 0);
		arena_pool_destroy(p);
	} else {
		assert_int_equal(kids, 0);
		assert_int_equal(r, -EMFILE);
		assert_null(p);
	}
	assert_int_equal(count_children(), 0);
	assert_int_equal(count_fds(), base);

	/* A replacement's start: it fails the same way, the fork server lives
	 * on and the slot's restart is retried.  Tasks queued before the
	 * death is seen, some on worker 0's queue: the worker started for it
	 * runs them while the knob waits, before it is ended.  What it
	 * completed is delivered, once; the rest runs on the survivor. */
	memset(&th, 0, sizeof(th));
	th.hold = !no_pidfd;
	th.delay_us = 50000;
	assert_int_equal(arena_pool_create(&p, A, &t.o), 0);
	assert_int_equal(run_tasks(p, 100), 0);
	srv = find_server(p, 2);
	assert_true(srv > 0);
	pid = arena_pool_worker_pid(p, 0);
	kill(pid, SIGKILL);
	wait_zombie(pid);
	for (; sub < 16; sub++) {
		struct arena_sqe s = { .index = sub, .user_data = sub };

		r = arena_pool_submit(p, &s, 1, 0);
		if (r == -EAGAIN)
			break;
		assert_int_equal(r, 1);
	}
	th.armed = 1;
	t0 = now_ns();
	while (!th.fired || got < sub) {
		int n = arena_pool_reap(p, c, 16, 1000000);

		if (n < 0 && n != -ETIMEDOUT && n != -EAGAIN)
			fail_msg("reap: %d (%s)", n, arena_strerror(n));
		for (int k = 0; k < n; k++) {
			char want[64];
			int wl = snprintf(want, sizeof(want), "item-%llu",
					  (unsigned long long)c[k].user_data);

			assert_int_equal(c[k].status, 0);
			assert_true(c[k].user_data < sub);
			assert_false(seen & (1u << c[k].user_data));
			seen |= 1u << c[k].user_data;
			assert_int_equal(c[k].len, wl);
			assert_memory_equal(c[k].data, want, (size_t)wl);
			by_unseen += c[k].worker == 0 && !no_pidfd;
			arena_pool_release(p, &c[k]);
		}
		got += n > 0 ? (unsigned)n : 0;
		assert_true(now_ns() - t0 < 10000000000ull);
	}
	fds_give_back(&th);
	print_message("  restart raced: %u task(s) queued, %u run by the worker ended\n", sub,
		      by_unseen);
	assert_int_equal(th.err, EMFILE);
	assert_int_equal(strangers(p, 2, srv), 0);
	assert_int_equal(find_server(p, 2), srv);
	while (arena_pool_worker_pid(p, 0) <= 0 || arena_pool_worker_pid(p, 0) == pid) {
		arena_pool_reap(p, c, 1, 1000000);
		assert_true(now_ns() - t0 < 10000000000ull);
	}
	assert_int_equal(run_tasks(p, 200), 0);
	stats(p, &st);
	assert_int_equal(st.crashes, 1);
	assert_int_equal(st.workers_restarted, 1);
	assert_int_equal(strangers(p, 2, srv), 0);
	assert_int_equal(arena_pool_stop(p, ARENA_STOP_DRAIN, WAIT_NS), 0);
	stats(p, &st);
	assert_int_equal(st.completed, st.submitted);
	arena_pool_destroy(p);
	assert_int_equal(count_children(), 0);
	assert_int_equal(count_fds(), base);
}

static void test_pidfd_dropped(void **state)
{
	(void)state;
	if (under_valgrind())
		skip(); /* valgrind keeps RLIMIT_NOFILE to itself */
	for (int m = 0; m < NMODES4; m++)
		run_pidfd_dropped(MODE_FLAGS(m), MODE_NO_PIDFD(m));
}

/* ---- a pidfd watch that fails: the worker is polled instead ------------- */

static void test_watch_fails(void **state)
{
	struct arena_pool_test_opts t = {
		.o = { .flags = ARENA_POOL_TEST_OPTS, .workers = 2, .depth = 16 },
		.fail_watches = 1u << 30, /* every watch after create fails */
	};
	struct arena_pool_stats st;
	struct arena_pool *p;
	struct arena_cqe c;
	pid_t pid;

	(void)state;
	assert_int_equal(arena_pool_create(&p, A, &t.o), 0);
	stats(p, &st);
	if (!st.uring) {
		arena_pool_destroy(p);
		skip();
	}
	assert_int_equal(run_tasks(p, 100), 0);
	/* The first kill is seen through the ring; its replacement's watch
	 * fails, so the second death is seen only by polling. */
	for (int k = 0; k < 2; k++) {
		pid = arena_pool_worker_pid(p, 0);
		kill(pid, SIGKILL);
		assert_int_equal(run_tasks(p, 500), 0);
		while (arena_pool_worker_pid(p, 0) == pid || arena_pool_worker_pid(p, 0) < 0) {
			arena_pool_reap(p, &c, 1, 1000000);
			usleep(1000);
		}
	}
	assert_int_equal(run_tasks(p, 200), 0);
	stats(p, &st);
	assert_int_equal(st.crashes, 2);
	assert_int_equal(st.workers_restarted, 2);
	assert_int_equal(arena_pool_stop(p, ARENA_STOP_DRAIN, WAIT_NS), 0);
	arena_pool_destroy(p);
	assert_int_equal(count_children(), 0);
}

/* ---- a worker killed during a stop with nothing to do is not replaced ---- */

static void test_no_restart_in_stop(void **state)
{
	(void)state;
	for (int m = 0; m < 2; m++) {
		struct arena_pool_opts o = { .flags = MODES[m], .workers = 2 };
		struct arena_pool_stats st;
		struct arena_pool *p;
		pid_t pid;

		assert_int_equal(arena_pool_create(&p, A, &o), 0);
		assert_int_equal(run_tasks(p, 200), 0);
		pid = arena_pool_worker_pid(p, 1);
		kill(pid, SIGKILL);
		wait_zombie(pid);
		/* Nobody reaps in between: stop is the first to see the death. */
		assert_int_equal(arena_pool_stop(p, ARENA_STOP_DRAIN, WAIT_NS), 0);
		stats(p, &st);
		assert_int_equal(st.crashes, 1);
		assert_int_equal(st.workers_restarted, 0);
		arena_pool_destroy(p);
		assert_int_equal(count_children(), 0);
	}
}

/* ---- a deadline kill is charged to the task that overran ------------------ */

static _Atomic int *g_slow_state; /* 1: the slow task runs */

/* user_data 1: runs ~300 ms (well under the deadline), telling the test
 * when it started.  Others: the default task. */
static int slowish_task(struct arena_task *t)
{
	if (t->user_data == 1) {
		atomic_store(g_slow_state, 1);
		usleep(300000);
	}
	return arena_task_get_item(t);
}

static struct chan_worker *chan_worker0(uint8_t *base)
{
	const struct chan_hdr *h = (const struct chan_hdr *)base;

	return (struct chan_worker *)(base + h->worker_off);
}

static void test_deadline_charged_by_seq(void **state)
{
	(void)state;
	g_slow_state = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(g_slow_state != MAP_FAILED);
	for (int m = 0; m < NMODES4; m++) {
		struct arena_pool_opts o = { .flags = MODE_FLAGS(m), .workers = 1, .max_attempts = 1,
					     .task = slowish_task,
					     .task_deadline_ns = 10ull * 1000 * 1000 * 1000 };
		struct arena_pool_stats st;
		struct arena_pool *p;
		struct arena_cqe c;
		struct stat fst;
		struct chan_worker *w;
		uint8_t *base;
		int fd;

		atomic_store(g_slow_state, 0);
		assert_int_equal(create_mode(&p, &o, MODE_NO_PIDFD(m)), 0);
		fd = arena_pool_channel_fd(p);
		assert_int_equal(fstat(fd, &fst), 0);
		base = mmap(NULL, (size_t)fst.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		assert_true(base != MAP_FAILED);
		w = chan_worker0(base);
		assert_int_equal(arena_pool_submit1(p, 5, 0), 0);
		assert_int_equal(arena_pool_reap(p, &c, 1, WAIT_NS), 1);
		arena_pool_release(p, &c);
		assert_int_equal(arena_pool_submit1(p, 6, 1), 0); /* seq 1 */
		while (!atomic_load(g_slow_state))
			usleep(1000);
		/*
		 * The parent's view just before a deadline kill that lands late:
		 * an old task (seq 0) started long ago, while the worker already
		 * runs seq 1.  The kill must not be charged to seq 1.
		 */
		atomic_store(&w->rec.task_seq, 0);
		atomic_store(&w->hot.task_start_ns, now_ns() - 60ull * 1000 * 1000 * 1000);
		assert_int_equal(arena_pool_reap(p, &c, 1, WAIT_NS), 1);
		assert_int_equal(c.user_data, 1);
		if (c.status)
			print_message("mode %d: the task in hand got %d (%s)\n", m,
				      c.status, arena_strerror(c.status));
		assert_int_equal(c.status, 0);
		arena_pool_release(p, &c);
		stats(p, &st);
		assert_int_equal(st.hangs_killed, 1);
		assert_int_equal(st.tasks_failed, 0);
		munmap(base, (size_t)fst.st_size);
		arena_pool_destroy(p);
	}
	munmap((void *)g_slow_state, 4096);
}

/* ---- the io_uring has one owner (run under TSan) -------------------------- */

struct owner_run {
	struct arena_pool *p;
	atomic_int stop;
	atomic_ulong got;
};

static void *reap_loop(void *arg)
{
	struct owner_run *o = arg;
	struct arena_cqe c[16];

	while (!atomic_load(&o->stop)) {
		int r = arena_pool_reap(o->p, c, 16, 2000000);

		if (r == -ENODATA)
			break;
		for (int k = 0; k < r; k++)
			arena_pool_release(o->p, &c[k]);
		if (r > 0)
			atomic_fetch_add(&o->got, (unsigned long)r);
	}
	return NULL;
}

/* 1 ms tasks: a killed worker always has work in hand and queued. */
static int ms_task(struct arena_task *t)
{
	usleep(1000);
	return arena_task_get_item(t);
}

static void test_uring_one_owner(void **state)
{
	(void)state;
	for (int round = 0; round < 10; round++) {
		struct arena_pool_opts o = { .workers = 2, .depth = 16, .task = ms_task };
		struct arena_pool_stats st;
		struct owner_run run = { 0 };
		pthread_t th;
		unsigned n = 0;

		assert_int_equal(arena_pool_create(&run.p, A, &o), 0);
		assert_int_equal(pthread_create(&th, NULL, reap_loop, &run), 0);
		while (n < 16) {
			struct arena_sqe s = { .index = n };

			if (arena_pool_submit(run.p, &s, 1, WAIT_NS) == 1)
				n++;
		}
		/* The reaper sleeps in the ring; stop restarts the killed
		 * worker (it had work) while it sleeps there. */
		usleep(3000);
		kill(arena_pool_worker_pid(run.p, round % 2), SIGKILL);
		assert_int_equal(arena_pool_stop(run.p, ARENA_STOP_DRAIN, WAIT_NS), 0);
		atomic_store(&run.stop, 1);
		pthread_join(th, NULL);
		stats(run.p, &st);
		assert_int_equal(st.crashes, 1);
		arena_pool_destroy(run.p);
		assert_int_equal(count_children(), 0);
	}
}

/* ---- options: room to grow ------------------------------------------------ */

static void test_opts_reserved(void **state)
{
	struct arena_pool *p;
	struct arena *a;

	(void)state;
	for (unsigned k = 0; k < 8; k++) {
		struct arena_pool_opts o = { .workers = 1 };

		o.reserved[k] = 1;
		assert_int_equal(arena_pool_create(&p, A, &o), -EINVAL);
	}
	{
		struct arena_pool_opts o = { .reserved0 = 1 };

		assert_int_equal(arena_pool_create(&p, A, &o), -EINVAL);
	}
	{
		struct arena_pool_opts o = { .nkeep_fds = 1 };

		assert_int_equal(arena_pool_create(&p, A, &o), -EINVAL);
	}
	{
		int bad = -1;
		struct arena_pool_opts o = { .keep_fds = &bad, .nkeep_fds = 1 };

		assert_int_equal(arena_pool_create(&p, A, &o), -EINVAL);
	}
	{
		struct arena_pool_opts o = { .worker_init = init_hook, .worker_path = "/bin/true" };

		assert_int_equal(arena_pool_create(&p, A, &o), -EINVAL);
	}
	{
		struct arena_pool_opts o = { .spin = 3 };

		assert_int_equal(arena_pool_create(&p, A, &o), -EINVAL);
	}
	{
		struct arena_pool_opts o = { .flags = 1u << 29 };

		assert_int_equal(arena_pool_create(&p, A, &o), -EINVAL);
	}
	for (unsigned k = 0; k < 4; k++) {
		struct arena_create_opts co = { 0 };

		co.reserved[k] = 5;
		assert_int_equal(arena_create(&a, &co), -EINVAL);
	}
	assert_int_equal(arena_pool_stats(NULL, NULL), -EINVAL);
	assert_string_equal(arena_strerror(-EPERM),
			    "not sealed (an fd without F_SEAL_SHRINK|GROW|WRITE, or the seals were refused)");
	assert_int_equal(count_children(), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opts_reserved),
		cmocka_unit_test(test_sigchld_ignored),
		cmocka_unit_test(test_waitpid_thread),
		cmocka_unit_test(test_creator_thread_exits),
		cmocka_unit_test(test_worker_init),
		cmocka_unit_test(test_worker_init_fails),
		cmocka_unit_test(test_signal_dispositions),
		cmocka_unit_test(test_ctrl_c),
		cmocka_unit_test(test_worker_fds),
		cmocka_unit_test(test_worker_argv_copied),
		cmocka_unit_test(test_fork_fails_retried),
		cmocka_unit_test(test_server_lost),
		cmocka_unit_test(test_pidfd_dropped),
		cmocka_unit_test(test_watch_fails),
		cmocka_unit_test(test_no_restart_in_stop),
		cmocka_unit_test(test_deadline_charged_by_seq),
		cmocka_unit_test(test_uring_one_owner),
	};
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	const char *only = getenv("ARENA_TEST_FILTER");

	(void)argc;
	(void)argv;
	if (only)
		cmocka_set_test_filter(only);
	if (n > 0) {
		exe[n] = 0;
		snprintf(g_build, sizeof(g_build), "%s", dirname(dirname(exe)));
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
