/* SPDX-License-Identifier: MIT */
/*
 * Passing an arena to other processes: a forked reader; an exec'd child that
 * attaches from ARENA_FD (arena_spawn and arena_export_env) and finds no
 * other libarena fd; pools of exec'd workers (arena-worker, with the default
 * task and with a task loaded from libtesttask.so) running 10k tasks exactly
 * once; an unrelated process receiving over a Unix socket; every malformed
 * message arena_recv() must refuse without leaking an fd; and arena-inspect
 * against a saved image and a live pool's channel.
 *
 * The binary re-executes itself (/proc/self/exe) with "--child-attach" or
 * "--child-recv" as argv[1]: main() handles those before cmocka starts.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arena.h>

extern char **environ;

#define SEALS_ALL (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

static char g_build[PATH_MAX];   /* $B: the test binary is $B/tests/test_pass */

/* ------------------------------------------------------------------------ */
/* Helpers (usable in children: no cmocka asserts)                           */
/* ------------------------------------------------------------------------ */

/* Item i: lower-case text of a length that varies with i (0 for i % 97 == 5). */
static size_t item_text(uint64_t i, char *buf, size_t cap)
{
	size_t len = i % 97 == 5 ? 0 : 8 + (size_t)(i * 7919 % 200), k;

	if (len > cap)
		len = cap;
	for (k = 0; k < len; k++)
		buf[k] = (char)('a' + (i * 31 + k * 7) % 26);
	if (len >= 8)
		snprintf(buf, 8, "i%06" PRIu64, i % 1000000); /* digits stay digits */
	if (len >= 8)
		buf[7] = '-';
	return len;
}

static int make_arena(struct arena **out, uint64_t n)
{
	struct arena *a;
	char buf[256];
	uint64_t i;
	int r = arena_create(&a, NULL);

	if (r < 0)
		return r;
	for (i = 0; i < n && r == 0; i++)
		r = arena_append(a, buf, item_text(i, buf, sizeof(buf)), NULL);
	if (r == 0)
		r = arena_seal(a);
	if (r < 0) {
		arena_close(a);
		return r;
	}
	*out = a;
	return 0;
}

/* 0 when a holds exactly the n items make_arena() writes. */
static int arena_matches(const struct arena *a, uint64_t n)
{
	char buf[256];
	const void *d;
	size_t len;
	uint64_t i;

	if (arena_count(a) != n)
		return 1;
	for (i = 0; i < n; i++) {
		size_t want = item_text(i, buf, sizeof(buf));

		if (arena_get(a, i, &d, &len) < 0 || len != want || (len && memcmp(d, buf, len)))
			return 2;
	}
	return 0;
}

static void upper(char *s, size_t len)
{
	size_t k;

	for (k = 0; k < len; k++)
		if (s[k] >= 'a' && s[k] <= 'z')
			s[k] = (char)(s[k] - 32);
}

/* 1 when fd is a memfd (its /proc link name says so). */
static int fd_is_memfd(int fd)
{
	char path[64], name[32];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, name, sizeof(name) - 1);
	return n >= 7 && !memcmp(name, "/memfd:", 7);
}

/* memfds open in this process (libarena's arenas and channels are memfds). */
static int count_memfds(void)
{
	int fd, n = 0;

	for (fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0 && fd_is_memfd(fd))
			n++;
	return n;
}

static int is_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	return fl >= 0 && (fl & FD_CLOEXEC);
}

static void self_exe(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);

	buf[n > 0 ? n : 0] = 0;
}

/* ------------------------------------------------------------------------ */
/* Children run as /proc/self/exe --child-...                                */
/* ------------------------------------------------------------------------ */

/*
 * --child-attach N WANT_CHANNEL [SPEC]: exactly the arena's memfd (and the
 * channel's) must have crossed the exec; after attach only the arena's own
 * duplicate (and the channel, kept) may remain, both close-on-exec.
 */
static int child_attach(int argc, char **argv)
{
	uint64_t n = strtoull(argv[2], NULL, 10);
	int want_chan = atoi(argv[3]), cfd = -1, r;
	const char *spec = argc > 4 ? argv[4] : NULL;
	struct arena_channel_info ci;
	struct arena *a;

	if (count_memfds() != 1 + want_chan)
		return 10;
	r = arena_attach_env(&a, want_chan ? &cfd : NULL, spec);
	if (r < 0) {
		fprintf(stderr, "child: attach: %s\n", arena_strerror(r));
		return 11;
	}
	if (arena_matches(a, n))
		return 12;
	if (count_memfds() != 1 + want_chan)
		return 13;
	if (!is_cloexec(arena_fd(a)))
		return 14;
	if (want_chan && (cfd < 0 || !is_cloexec(cfd) || arena_channel_inspect(cfd, &ci) < 0))
		return 15;
	if (want_chan)
		close(cfd);
	arena_close(a);
	return count_memfds() == 0 ? 0 : 16;
}

/* --child-recv SOCK N WANT_CHANNEL: receives over the socket and checks. */
static int child_recv(char **argv)
{
	int sock = atoi(argv[2]), want_chan = atoi(argv[4]), cfd = -1, r;
	uint64_t n = strtoull(argv[3], NULL, 10);
	struct arena_channel_info ci;
	struct arena *a;

	r = arena_recv(sock, &a, &cfd, 10ll * 1000 * 1000 * 1000);
	if (r < 0) {
		fprintf(stderr, "child: recv: %s\n", arena_strerror(r));
		return 20;
	}
	if (arena_matches(a, n))
		return 21;
	if ((cfd >= 0) != want_chan)
		return 22;
	if (cfd >= 0 && (!is_cloexec(cfd) || arena_channel_inspect(cfd, &ci) < 0 ||
			 ci.workers == 0))
		return 23;
	if (!is_cloexec(arena_fd(a)))
		return 24;
	/* only the arena's own fd and the channel: the received one was closed */
	if (count_memfds() != 1 + want_chan)
		return 25;
	if (write(sock, "k", 1) != 1)
		return 26;
	if (cfd >= 0)
		close(cfd);
	arena_close(a);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Fork and exec                                                             */
/* ------------------------------------------------------------------------ */

static void test_fork_reader(void **state)
{
	struct arena *a;
	pid_t pid;

	assert_int_equal(make_arena(&a, 5000), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(arena_matches(a, 5000) ? 1 : 0);
	assert_int_equal(wait_code(pid), 0);
	arena_close(a);
}

/* Spawns --child-attach with arena a (and pool p); decoys are other libarena
 * fds open in the parent that must not cross. */
static int spawn_attach(struct arena *a, struct arena_pool *p, uint64_t n)
{
	char exe[PATH_MAX], nbuf[32];
	char *argv[] = { exe, "--child-attach", nbuf, p ? "1" : "0", NULL };
	pid_t pid;
	int r;

	self_exe(exe, sizeof(exe));
	snprintf(nbuf, sizeof(nbuf), "%" PRIu64, n);
	r = arena_spawn(&pid, exe, argv, NULL, a, p);
	if (r < 0)
		return r;
	return wait_code(pid);
}

static void test_spawn_attach(void **state)
{
	struct arena *a, *decoy;
	struct arena_pool *p;
	struct arena_pool_opts o = { .workers = 2 };
	int before = count_fds();

	assert_int_equal(make_arena(&a, 3000), 0);
	assert_int_equal(make_arena(&decoy, 10), 0);
	assert_int_equal(arena_pool_create(&p, decoy, &o), 0);

	/* arena only: the decoy arena and the pool's channel stay behind */
	assert_int_equal(spawn_attach(a, NULL, 3000), 0);
	/* the parent's fds are untouched: still close-on-exec */
	assert_true(is_cloexec(arena_fd(a)));
	assert_true(is_cloexec(arena_pool_channel_fd(p)));
	arena_pool_destroy(p);

	/* arena and channel */
	assert_int_equal(arena_pool_create(&p, a, &o), 0);
	assert_int_equal(spawn_attach(a, p, 3000), 0);
	assert_true(is_cloexec(arena_fd(a)));
	assert_true(is_cloexec(arena_pool_channel_fd(p)));
	assert_int_equal(arena_pool_stop(p, ARENA_STOP_DRAIN, -1), 0);
	arena_pool_destroy(p);

	/* a stale ARENA_FD in our own environment does not shadow the child's */
	setenv("ARENA_FD", "9999", 1);
	assert_int_equal(spawn_attach(a, NULL, 3000), 0);
	unsetenv("ARENA_FD");

	/* bad arguments */
	assert_int_equal(arena_spawn(NULL, NULL, NULL, NULL, a, NULL), -EINVAL);
	{
		char *argv[] = { "x", NULL };
		assert_int_equal(arena_spawn(NULL, "/bin/true", argv, NULL, NULL, NULL), -EINVAL);
		if (!under_valgrind()) /* valgrind is what gets exec'd */
			assert_int_equal(arena_spawn(NULL, "/nonexistent/prog", argv, NULL, a, NULL),
					 -ENOENT);
	}
	arena_close(decoy);
	arena_close(a);
	assert_int_equal(count_fds(), before);
}

/* The documented manual path: fork, arena_export_env in the child, execve. */
static void test_export_env_exec(void **state)
{
	struct arena *a;
	char env[64], tiny[8];
	int before = count_fds();
	pid_t pid;

	assert_int_equal(make_arena(&a, 1234), 0);
	assert_int_equal(arena_export_env(a, NULL, tiny, sizeof(tiny)), -ENOSPC);
	assert_true(is_cloexec(arena_fd(a)));   /* a failure changes nothing */
	assert_int_equal(arena_export_env(NULL, NULL, env, sizeof(env)), -EINVAL);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char exe[PATH_MAX];
		char *argv[] = { exe, "--child-attach", "1234", "0", NULL };
		char *envp[] = { env, NULL };

		self_exe(exe, sizeof(exe));
		if (arena_export_env(a, NULL, env, sizeof(env)) < 0)
			_exit(40);
		execve(exe, argv, envp);
		_exit(41);
	}
	assert_int_equal(wait_code(pid), 0);

	/* the value alone, given as an argument instead of the environment */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char exe[PATH_MAX], spec[64];
		char *argv[] = { exe, "--child-attach", "1234", "0", spec, NULL };
		char *envp[] = { NULL };

		self_exe(exe, sizeof(exe));
		if (arena_export_env(a, NULL, env, sizeof(env)) < 0)
			_exit(40);
		snprintf(spec, sizeof(spec), "%s", env + strlen("ARENA_FD="));
		execve(exe, argv, envp);
		_exit(41);
	}
	assert_int_equal(wait_code(pid), 0);
	assert_true(is_cloexec(arena_fd(a)));

	/* in this process: export clears close-on-exec here, as documented */
	assert_int_equal(arena_export_env(a, NULL, env, sizeof(env)), 0);
	assert_false(is_cloexec(arena_fd(a)));
	{
		char want[64];

		snprintf(want, sizeof(want), "ARENA_FD=%d", arena_fd(a));
		assert_string_equal(env, want);
	}
	arena_close(a);
	assert_int_equal(count_fds(), before);
}

static void test_attach_env_parse(void **state)
{
	static const char *bad[] = {
		"", "ARENA_FD=", "ARENA_FD", "x", "-1", "+3", " 3", "3 ", "3,", ",3",
		"3,x", "3,-4", "3,4,5", "3;4", "0x3", "99999999999", "3,99999999999",
		"ARENA_FD=3,", "ARENA_FD=ARENA_FD=3", "3\n",
	};
	struct arena *a, *b;
	char spec[64];
	int before, d, d2, pfd[2], cfd, r;
	size_t k;

	assert_int_equal(make_arena(&a, 100), 0);
	before = count_fds();
	for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		r = arena_attach_env(&b, NULL, bad[k]);
		if (r != -EINVAL)
			fail_msg("spec '%s': %d, want -EINVAL", bad[k], r);
	}
	/* same fd twice */
	d = dup(arena_fd(a));
	snprintf(spec, sizeof(spec), "%d,%d", d, d);
	assert_int_equal(arena_attach_env(&b, NULL, spec), -EINVAL);
	assert_true(fcntl(d, F_GETFD) >= 0);
	/* nothing in the environment */
	unsetenv("ARENA_FD");
	assert_int_equal(arena_attach_env(&b, NULL, NULL), -ENOENT);
	assert_int_equal(arena_attach_env(NULL, NULL, "3"), -EINVAL);
	/* not an open fd */
	assert_int_equal(arena_attach_env(&b, NULL, "1000"), -EBADF);

	/* a pipe is not an arena: refused, and the fd named is left alone */
	assert_int_equal(pipe(pfd), 0);
	snprintf(spec, sizeof(spec), "ARENA_FD=%d", pfd[0]);
	assert_true(arena_attach_env(&b, NULL, spec) < 0);
	assert_true(fcntl(pfd[0], F_GETFD) >= 0);
	/* a good arena with a pipe as its channel: refused, both left open */
	snprintf(spec, sizeof(spec), "%d,%d", d, pfd[0]);
	assert_int_equal(arena_attach_env(&b, &cfd, spec), -EBADMSG);
	assert_int_equal(cfd, -1);
	assert_true(fcntl(d, F_GETFD) >= 0 && fcntl(pfd[0], F_GETFD) >= 0);
	close(pfd[0]);
	close(pfd[1]);

	/* an unsealed memfd: -EPERM */
	{
		int m = memfd_create("unsealed", MFD_CLOEXEC);

		assert_true(m >= 0);
		assert_int_equal(ftruncate(m, (off_t)arena_size(a)), 0);
		assert_int_equal(pwrite(m, arena_base(a), arena_size(a), 0), (ssize_t)arena_size(a));
		snprintf(spec, sizeof(spec), "%d", m);
		assert_int_equal(arena_attach_env(&b, NULL, spec), -EPERM);
		close(m);
	}

	/* the good case, from the environment: the inherited fd is closed */
	snprintf(spec, sizeof(spec), "%d", d);
	setenv("ARENA_FD", spec, 1);
	assert_int_equal(arena_attach_env(&b, &cfd, NULL), 0);
	unsetenv("ARENA_FD");
	assert_int_equal(cfd, -1);
	assert_true(fcntl(d, F_GETFD) < 0);
	assert_int_equal(arena_matches(b, 100), 0);
	arena_close(b);

	/* with a channel, given back close-on-exec; or closed when not wanted */
	{
		struct arena_pool *p;
		struct arena_pool_opts o = { .workers = 1 };

		assert_int_equal(arena_pool_create(&p, a, &o), 0);
		d = dup(arena_fd(a));
		d2 = dup(arena_pool_channel_fd(p)); /* dup: not close-on-exec */
		assert_false(is_cloexec(d2));
		snprintf(spec, sizeof(spec), "ARENA_FD=%d,%d", d, d2);
		assert_int_equal(arena_attach_env(&b, &cfd, spec), 0);
		assert_int_equal(cfd, d2);
		assert_true(is_cloexec(cfd));
		assert_true(fcntl(d, F_GETFD) < 0);
		close(cfd);
		arena_close(b);

		d = dup(arena_fd(a));
		d2 = dup(arena_pool_channel_fd(p));
		snprintf(spec, sizeof(spec), "%d,%d", d, d2);
		assert_int_equal(arena_attach_env(&b, NULL, spec), 0);
		assert_true(fcntl(d, F_GETFD) < 0 && fcntl(d2, F_GETFD) < 0);
		arena_close(b);

		/* a channel where the arena should be: not an arena (-EBADMSG,
		 * not -EPERM though it lacks the arena's seals) */
		d2 = dup(arena_pool_channel_fd(p));
		snprintf(spec, sizeof(spec), "%d", d2);
		assert_int_equal(arena_attach_env(&b, NULL, spec), -EBADMSG);
		assert_true(fcntl(d2, F_GETFD) >= 0);
		close(d2);

		/* a channel that serves another arena is refused */
		{
			struct arena *other;

			assert_int_equal(make_arena(&other, 7), 0);
			d = dup(arena_fd(other));
			d2 = dup(arena_pool_channel_fd(p));
			snprintf(spec, sizeof(spec), "%d,%d", d, d2);
			assert_int_equal(arena_attach_env(&b, &cfd, spec), -EBADMSG);
			close(d);
			close(d2);
			arena_close(other);
		}
		arena_pool_destroy(p);
	}
	assert_int_equal(count_fds(), before);
	arena_close(a);
}

/* ------------------------------------------------------------------------ */
/* Pools of exec'd workers                                                   */
/* ------------------------------------------------------------------------ */

static int tool_path(char *buf, size_t len, const char *rel)
{
	if ((size_t)snprintf(buf, len, "%s/%s", g_build, rel) >= len)
		return 0;
	return access(buf, F_OK) == 0;
}

/* Runs n tasks through an exec'd pool; each index must complete exactly once
 * with the item (or the item upper-cased). */
static void run_exec_pool(char *const *worker_argv, int upper_case, uint64_t n,
			  unsigned workers)
{
	struct arena_pool_opts o = { .workers = workers, .depth = 64 };
	struct arena_cqe cqe[64];
	struct arena_pool_stats st;
	struct arena_pool *p;
	struct arena *a;
	uint8_t *seen;
	uint64_t next = 0, done = 0;
	int64_t wait = 0;
	int before = count_fds(), children = count_children(), r;
	unsigned i;

	assert_int_equal(make_arena(&a, n), 0);
	o.worker_path = worker_argv[0];
	o.worker_argv = worker_argv;
	r = arena_pool_create(&p, a, &o);
	assert_int_equal(r, 0);
	seen = calloc(n, 1);
	assert_non_null(seen);
	while (done < n) {
		if (next < n) {
			struct arena_sqe sq[32];
			unsigned k = 0;

			while (k < 32 && next + k < n) {
				sq[k].index = next + k;
				sq[k].user_data = (next + k) ^ 0xabcdef;
				sq[k].op = ARENA_OP_COPY;
				sq[k].flags = 0;
				k++;
			}
			r = arena_pool_submit(p, sq, k, 0);
			if (r > 0)
				next += (uint64_t)r;
			else
				assert_int_equal(r, -EAGAIN);
			/* queue full: wait for completions instead of spinning */
			wait = r > 0 ? 0 : 100ll * 1000 * 1000;
		}
		r = arena_pool_reap(p, cqe, 64, next < n ? wait : 10ll * 1000 * 1000 * 1000);
		/* The 100 ms wait of a full queue may pass with no completion
		 * (slow starts: a loaded machine, valgrind): submit again. */
		if (r == -EAGAIN || (r == -ETIMEDOUT && next < n))
			continue;
		assert_true(r > 0);
		for (i = 0; i < (unsigned)r; i++) {
			char want[256];
			size_t len;

			assert_int_equal(cqe[i].status, 0);
			assert_true(cqe[i].index < n);
			assert_int_equal(cqe[i].user_data, cqe[i].index ^ 0xabcdef);
			assert_int_equal(seen[cqe[i].index], 0);
			seen[cqe[i].index] = 1;
			len = item_text(cqe[i].index, want, sizeof(want));
			if (upper_case)
				upper(want, len);
			assert_int_equal(cqe[i].len, len);
			if (len)
				assert_memory_equal(cqe[i].data, want, len);
			arena_pool_release(p, &cqe[i]);
			done++;
		}
	}
	assert_int_equal(arena_pool_stats(p, &st), 0);
	assert_int_equal(st.crashes, 0);
	assert_int_equal(st.submitted, n);
	for (i = 0; i < workers; i++)
		assert_true(arena_pool_worker_pid(p, i) > 0);
	assert_int_equal(arena_pool_stop(p, ARENA_STOP_DRAIN, 10ll * 1000 * 1000 * 1000), 0);
	arena_pool_destroy(p);
	free(seen);
	arena_close(a);
	assert_int_equal(count_fds(), before);
	assert_int_equal(count_children(), children);
}

static void test_exec_workers_default(void **state)
{
	char path[PATH_MAX];
	char *argv[] = { path, NULL };

	if (!tool_path(path, sizeof(path), "tools/arena-worker"))
		skip();
	run_exec_pool(argv, 0, under_sanitizer() ? 3000 : 10000, 3);
}

static void test_exec_workers_task_so(void **state)
{
	char path[PATH_MAX], so[PATH_MAX], task[PATH_MAX + 32];
	char *argv[] = { path, "--task", task, NULL };

	if (!tool_path(path, sizeof(path), "tools/arena-worker") ||
	    !tool_path(so, sizeof(so), "tests/libtesttask.so"))
		skip();
	snprintf(task, sizeof(task), "%s:test_upper", so);
	run_exec_pool(argv, 1, under_sanitizer() ? 3000 : 10000, 2);
}

/* A task that kills every worker that runs it fails alone (-EOWNERDEAD). */
static void test_exec_workers_poison(void **state)
{
	char path[PATH_MAX], so[PATH_MAX], task[PATH_MAX + 32];
	char *argv[] = { path, "--task", task, NULL };
	struct arena_pool_opts o = { .workers = 2, .max_attempts = 2 };
	struct arena_pool *p;
	struct arena_cqe cqe;
	struct arena *a;
	int before = count_fds(), children = count_children(), r;
	unsigned got = 0;

	if (!tool_path(path, sizeof(path), "tools/arena-worker") ||
	    !tool_path(so, sizeof(so), "tests/libtesttask.so"))
		skip();
	snprintf(task, sizeof(task), "%s:test_poison", so);
	assert_int_equal(make_arena(&a, 10), 0);
	o.worker_path = path;
	o.worker_argv = argv;
	assert_int_equal(arena_pool_create(&p, a, &o), 0);
	assert_int_equal(arena_pool_submit1(p, 3, 33), 0);
	while (got < 1) {
		r = arena_pool_reap(p, &cqe, 1, 20ll * 1000 * 1000 * 1000);
		assert_int_equal(r, 1);
		assert_int_equal(cqe.status, -EOWNERDEAD);
		assert_int_equal(cqe.user_data, 33);
		arena_pool_release(p, &cqe);
		got++;
	}
	assert_int_equal(arena_pool_stop(p, ARENA_STOP_DRAIN, 10ll * 1000 * 1000 * 1000), 0);
	arena_pool_destroy(p);
	arena_close(a);
	assert_int_equal(count_fds(), before);
	assert_int_equal(count_children(), children);
}

/* arena-worker refuses a bad --task and an environment without ARENA_FD. */
static void test_worker_tool_errors(void **state)
{
	char path[PATH_MAX], so[PATH_MAX], cmd[4 * PATH_MAX];

	if (!tool_path(path, sizeof(path), "tools/arena-worker") ||
	    !tool_path(so, sizeof(so), "tests/libtesttask.so"))
		skip();
	snprintf(cmd, sizeof(cmd), "env -u ARENA_FD %s 2>/dev/null", path);
	assert_int_equal(WEXITSTATUS(system(cmd)), 1);
	snprintf(cmd, sizeof(cmd), "%s --task %s:no_such_symbol 2>/dev/null", path, so);
	assert_int_equal(WEXITSTATUS(system(cmd)), 1);
	snprintf(cmd, sizeof(cmd), "%s --task /nonexistent.so:f 2>/dev/null", path);
	assert_int_equal(WEXITSTATUS(system(cmd)), 1);
	snprintf(cmd, sizeof(cmd), "%s --bogus 2>/dev/null", path);
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
	snprintf(cmd, sizeof(cmd), "%s --help >/dev/null", path);
	assert_int_equal(WEXITSTATUS(system(cmd)), 0);
}

/* ------------------------------------------------------------------------ */
/* Over a Unix socket                                                        */
/* ------------------------------------------------------------------------ */

/* An unrelated process: fork + exec, so it shares nothing but the socket. */
static void socket_to_exec(int type, int with_pool)
{
	struct arena_pool_opts o = { .workers = 2 };
	struct arena_pool *p = NULL;
	struct arena *a;
	int sv[2], before = count_fds();
	char c = 0;
	pid_t pid;

	assert_int_equal(make_arena(&a, 2500), 0);
	if (with_pool)
		assert_int_equal(arena_pool_create(&p, a, &o), 0);
	assert_int_equal(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char exe[PATH_MAX], fdb[16];
		char *argv[] = { exe, "--child-recv", fdb, "2500", with_pool ? "1" : "0", NULL };
		int fl = fcntl(sv[1], F_GETFD);

		self_exe(exe, sizeof(exe));
		snprintf(fdb, sizeof(fdb), "%d", sv[1]);
		/* only the socket crosses; the arena and channel do not */
		if (fl < 0 || fcntl(sv[1], F_SETFD, fl & ~FD_CLOEXEC) < 0)
			_exit(30);
		execve(exe, argv, environ);
		_exit(31);
	}
	close(sv[1]);
	assert_int_equal(arena_send(sv[0], a, p), 0);
	assert_int_equal(read(sv[0], &c, 1), 1);
	assert_int_equal(c, 'k');
	assert_int_equal(wait_code(pid), 0);
	close(sv[0]);
	arena_pool_destroy(p);
	arena_close(a);
	assert_int_equal(count_fds(), before);
}

static void test_socket_unrelated(void **state)
{
	socket_to_exec(SOCK_STREAM, 0);
	socket_to_exec(SOCK_STREAM, 1);
	socket_to_exec(SOCK_SEQPACKET, 1);
	socket_to_exec(SOCK_DGRAM, 0);
}

/* In one process: send and receive, channel kept or closed. */
static void test_socket_local(void **state)
{
	struct arena_pool_opts o = { .workers = 1 };
	struct arena_channel_info ci;
	struct arena_pool *p;
	struct arena *a, *b;
	int sv[2], cfd, before;

	assert_int_equal(make_arena(&a, 50), 0);
	assert_int_equal(arena_pool_create(&p, a, &o), 0);
	before = count_fds();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(arena_send(sv[0], a, p), 0);
	assert_int_equal(arena_recv(sv[1], &b, &cfd, -1), 0);
	assert_int_equal(arena_matches(b, 50), 0);
	assert_true(cfd >= 0 && is_cloexec(cfd) && is_cloexec(arena_fd(b)));
	assert_int_equal(arena_channel_inspect(cfd, &ci), 0);
	assert_int_equal(ci.workers, 1);
	close(cfd);
	arena_close(b);
	/* channel not wanted: closed */
	assert_int_equal(arena_send(sv[0], a, p), 0);
	assert_int_equal(arena_recv(sv[1], &b, NULL, 1000000000), 0);
	arena_close(b);
	/* two messages back to back on a stream are read one at a time */
	assert_int_equal(arena_send(sv[0], a, NULL), 0);
	assert_int_equal(arena_send(sv[0], a, p), 0);
	assert_int_equal(arena_recv(sv[1], &b, &cfd, 0), 0);
	assert_int_equal(cfd, -1);
	arena_close(b);
	assert_int_equal(arena_recv(sv[1], &b, &cfd, 0), 0);
	assert_true(cfd >= 0);
	close(cfd);
	arena_close(b);
	/* an unsealed (building) arena is not sent */
	{
		struct arena *u;

		assert_int_equal(arena_create(&u, NULL), 0);
		assert_int_equal(arena_send(sv[0], u, NULL), -EINVAL);
		arena_close(u);
	}
	assert_int_equal(arena_send(-1, a, NULL), -EBADF);
	assert_int_equal(arena_recv(sv[1], NULL, NULL, 0), -EINVAL);
	close(sv[0]);
	close(sv[1]);
	/* the peer is gone: the sender gets EPIPE, not SIGPIPE */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	assert_int_equal(arena_send(sv[0], a, NULL), -EPIPE);
	close(sv[0]);
	assert_int_equal(count_fds(), before);
	arena_pool_destroy(p);
	arena_close(a);
}

/* ---- malformed messages ------------------------------------------------- */

/* Sends len bytes with nfds fds (SCM_RIGHTS).  Returns sendmsg's result. */
static ssize_t send_raw(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(32 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.b;
		msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	}
	return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

/* The bytes arena_send() writes, taken off a socketpair (fds closed): the
 * tests need a valid header without knowing its layout. */
static size_t capture_header(const struct arena *a, const struct arena_pool *p,
			     char *buf, size_t cap)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(8 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
	struct cmsghdr *cm;
	int sv[2];
	ssize_t n;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(arena_send(sv[0], a, p), 0);
	n = recvmsg(sv[1], &msg, MSG_CMSG_CLOEXEC);
	assert_true(n > 0);
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		int k, fd, nf = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));

		for (k = 0; k < nf; k++) {
			memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int), sizeof(fd));
			close(fd);
		}
	}
	close(sv[0]);
	close(sv[1]);
	return (size_t)n;
}

/* A sealed memfd holding bytes (a copy of an image, maybe damaged). */
static int memfd_with(const void *bytes, size_t len, int seal)
{
	int m = memfd_create("test-image", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(m >= 0);
	assert_int_equal(ftruncate(m, (off_t)len), 0);
	assert_int_equal(pwrite(m, bytes, len, 0), (ssize_t)len);
	if (seal)
		assert_int_equal(fcntl(m, F_ADD_SEALS, SEALS_ALL), 0);
	return m;
}

/* Sends buf+fds on a fresh socketpair of `type` and returns arena_recv()'s
 * answer; checks no fd leaked and that nothing came back on failure. */
static int recv_case(int type, const void *buf, size_t len, const int *fds, int nfds,
		     int close_after)
{
	struct arena *b = (struct arena *)1;
	int sv[2], cfd = 7, before = count_fds(), r;

	assert_int_equal(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
	if (len || nfds)
		assert_int_equal(send_raw(sv[0], buf, len, fds, nfds), (ssize_t)len);
	if (close_after)
		close(sv[0]);
	r = arena_recv(sv[1], &b, &cfd, 300ll * 1000 * 1000);
	if (r == 0) {
		if (cfd >= 0)
			close(cfd);
		arena_close(b);
	} else {
		assert_int_equal(cfd, -1);
	}
	if (!close_after)
		close(sv[0]);
	close(sv[1]);
	assert_int_equal(count_fds(), before);
	return r;
}

static void test_recv_bad(void **state)
{
	struct arena_pool_opts o = { .workers = 1 };
	struct arena_pool *p;
	struct arena *a;
	char h1[64], h2[64], junk[64];
	size_t l1, l2, k;
	int afd, chfd, fds[32], m, pfd[2], before;
	const int types[] = { SOCK_STREAM, SOCK_SEQPACKET };
	uint64_t t0;

	assert_int_equal(make_arena(&a, 64), 0);
	assert_int_equal(arena_pool_create(&p, a, &o), 0);
	afd = arena_fd(a);
	chfd = arena_pool_channel_fd(p);
	before = count_fds();
	l1 = capture_header(a, NULL, h1, sizeof(h1));
	l2 = capture_header(a, p, h2, sizeof(h2));
	assert_true(l1 >= 8 && l1 < sizeof(h1) && l2 == l1);
	for (k = 0; k < 32; k++)
		fds[k] = afd;

	for (k = 0; k < 2; k++) {
		int t = types[k];

		/* the good ones, through the same path */
		assert_int_equal(recv_case(t, h1, l1, fds, 1, 0), 0);
		fds[1] = chfd;
		assert_int_equal(recv_case(t, h2, l2, fds, 2, 0), 0);
		fds[1] = afd;

		/* wrong fd counts with a valid header */
		assert_int_equal(recv_case(t, h1, l1, fds, 0, 0), -EBADMSG);
		assert_int_equal(recv_case(t, h1, l1, fds, 3, 0), -EBADMSG);
		assert_int_equal(recv_case(t, h1, l1, fds, 2, 0), -EBADMSG);
		assert_int_equal(recv_case(t, h2, l2, fds, 1, 0), -EBADMSG);
		assert_int_equal(recv_case(t, h2, l2, fds, 3, 0), -EBADMSG);
		/* more fds than the receive buffer holds (MSG_CTRUNC) */
		assert_int_equal(recv_case(t, h1, l1, fds, 20, 0), -EBADMSG);
		/* the kinds swapped: a channel where the arena should be */
		fds[0] = chfd;
		fds[1] = afd;
		assert_int_equal(recv_case(t, h2, l2, fds, 2, 0), -EBADMSG);
		assert_int_equal(recv_case(t, h1, l1, fds, 1, 0), -EBADMSG);
		/* an arena where the channel should be */
		fds[0] = afd;
		assert_int_equal(recv_case(t, h2, l2, fds, 2, 0), -EBADMSG);

		/* an unsealed copy of a valid image */
		m = memfd_with(arena_base(a), arena_size(a), 0);
		assert_int_equal(recv_case(t, h1, l1, &m, 1, 0), -EPERM);
		close(m);
		/* a corrupt copy (magic) and a truncated one, sealed */
		{
			uint8_t *img = malloc(arena_size(a));

			assert_non_null(img);
			memcpy(img, arena_base(a), arena_size(a));
			img[0] ^= 0xff;
			m = memfd_with(img, arena_size(a), 1);
			assert_int_equal(recv_case(t, h1, l1, &m, 1, 0), -EBADMSG);
			close(m);
			img[0] ^= 0xff;
			m = memfd_with(img, arena_size(a) - 16, 1);
			assert_int_equal(recv_case(t, h1, l1, &m, 1, 0), -EBADMSG);
			close(m);
			free(img);
		}
		/* a valid arena, but not the size the header announces */
		{
			struct arena *other;

			assert_int_equal(make_arena(&other, 3), 0);
			m = arena_fd(other);
			assert_int_equal(recv_case(t, h1, l1, &m, 1, 0), -EBADMSG);
			arena_close(other);
		}
		/* a pipe instead of a memfd */
		assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
		assert_int_equal(recv_case(t, h1, l1, &pfd[0], 1, 0), -EBADMSG);
		close(pfd[0]);
		close(pfd[1]);
		/* a regular file that is not a memfd */
		{
			char tmpl[] = "/tmp/test_pass.XXXXXX";
			int f = mkostemp(tmpl, O_CLOEXEC);

			assert_true(f >= 0);
			unlink(tmpl);
			assert_int_equal(pwrite(f, arena_base(a), arena_size(a), 0),
					 (ssize_t)arena_size(a));
			assert_int_equal(recv_case(t, h1, l1, &f, 1, 0), -EBADMSG);
			close(f);
		}

		/* garbage without fds, and with the arena's fd */
		for (m = 0; m < (int)sizeof(junk); m++)
			junk[m] = (char)(m * 37 + 11);
		assert_int_equal(recv_case(t, junk, l1, NULL, 0, 0), -EBADMSG);
		assert_int_equal(recv_case(t, junk, l1, fds, 1, 0), -EBADMSG);
		/* a valid header with a bad version or fd count inside */
		memcpy(junk, h1, l1);
		junk[8] ^= 0x40;
		assert_true(recv_case(t, junk, l1, fds, 1, 0) < 0);
		memcpy(junk, h1, l1);
		junk[12] = 2;
		assert_int_equal(recv_case(t, junk, l1, fds, 2, 0), -EBADMSG);

		/* the peer hangs up mid-message and before any */
		assert_int_equal(recv_case(t, h1, l1 / 2, fds, 1, 1),
				 t == SOCK_STREAM ? -ECONNRESET : -EBADMSG);
		assert_int_equal(recv_case(t, NULL, 0, NULL, 0, 1), -ECONNRESET);

		/* nothing comes: -ETIMEDOUT after the timeout, not before */
		t0 = now_ns();
		assert_int_equal(recv_case(t, NULL, 0, NULL, 0, 0), -ETIMEDOUT);
		assert_true(now_ns() - t0 >= 300ull * 1000 * 1000);
	}
	/* a record longer than the header on a record socket */
	memcpy(junk, h1, l1);
	assert_int_equal(recv_case(SOCK_SEQPACKET, junk, l1 + 1, fds, 1, 0), -EBADMSG);
	/* a short header on a stream whose peer stays: waits, then times out */
	assert_int_equal(recv_case(SOCK_STREAM, h1, l1 / 2, fds, 1, 0), -ETIMEDOUT);
	/* zero timeout with nothing there */
	{
		int sv[2];
		struct arena *b;

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		assert_int_equal(arena_recv(sv[1], &b, NULL, 0), -ETIMEDOUT);
		close(sv[0]);
		close(sv[1]);
	}
	assert_int_equal(count_fds(), before);
	arena_pool_destroy(p);
	arena_close(a);
}

/*
 * Issue 13: a channel fd is accepted only with F_SEAL_SHRINK and F_SEAL_GROW
 * (else its peer could shrink it under the receiver's mapping: SIGBUS), by
 * arena_recv(), arena_attach_env() and arena_channel_inspect(); a sealed
 * channel shorter than its header says is corrupt.
 */
static int chan_copy(int chfd, size_t len, int seals)
{
	struct stat st;
	uint8_t *buf;
	int m;

	assert_int_equal(fstat(chfd, &st), 0);
	buf = calloc(1, (size_t)st.st_size);
	assert_non_null(buf);
	assert_int_equal(pread(chfd, buf, (size_t)st.st_size, 0), (ssize_t)st.st_size);
	m = memfd_create("arena-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(m >= 0);
	assert_int_equal(ftruncate(m, (off_t)len), 0);
	assert_int_equal(pwrite(m, buf, len < (size_t)st.st_size ? len : (size_t)st.st_size, 0),
			 (ssize_t)(len < (size_t)st.st_size ? len : (size_t)st.st_size));
	if (seals)
		assert_int_equal(fcntl(m, F_ADD_SEALS, seals), 0);
	free(buf);
	return m;
}

/* What arena_worker_main() says of channel fd m, in a forked child (the
 * worker loop would run on a good channel: only refusals are asked). */
static int worker_main_verdict(struct arena *a, int m)
{
	pid_t pid = fork();
	char env[64];

	assert_true(pid >= 0);
	if (pid == 0) {
		int r;

		int pp[2];

		alarm(10); /* accepted by mistake: the worker loop would run on */
		if (pipe(pp) < 0)
			_exit(99);
		snprintf(env, sizeof(env), "%d,%d", arena_fd(a), m);
		setenv("ARENA_FD", env, 1);
		snprintf(env, sizeof(env), "0,%d,%d", (int)getppid(), pp[1]);
		setenv("ARENA_WORKER", env, 1);
		r = arena_worker_main(NULL, NULL);
		_exit(r < 0 && r > -100 ? -r : 100);
	}
	return -wait_code(pid);
}

/* arena_worker_main() in a forked child with this ARENA_WORKER, the arena's
 * fd and channel fd m in ARENA_FD; its negative errno (0: it ran and
 * returned 0). */
static int worker_main_env(struct arena *a, int m, const char *worker_env)
{
	pid_t pid = fork();
	char env[64];

	assert_true(pid >= 0);
	if (pid == 0) {
		int r;

		alarm(10);
		snprintf(env, sizeof(env), "%d,%d", arena_fd(a), m);
		setenv("ARENA_FD", env, 1);
		setenv("ARENA_WORKER", worker_env, 1);
		r = arena_worker_main(NULL, NULL);
		_exit(r < 0 && r > -100 ? -r : 100);
	}
	return -wait_code(pid);
}

/*
 * ARENA_WORKER's third field is the reapers' wake pipe: a worker writes its
 * wake-ups there, so only a pipe's write end is taken (-EBADF otherwise),
 * and a blocking one is made non-blocking (a full pipe must not stop the
 * worker).  A missing field is -EINVAL; a good one gets as far as the
 * channel (here a memfd that is not one).
 */
static void test_worker_env_wake_fd(void **state)
{
	struct arena *a;
	char env[64];
	int pp[2], m, ppid = (int)getpid();

	(void)state;
	assert_int_equal(make_arena(&a, 100), 0);
	assert_int_equal(pipe(pp), 0); /* blocking, as a hostile parent might */
	m = memfd_create("not-a-channel", MFD_CLOEXEC);
	assert_true(m >= 0);
	assert_int_equal(ftruncate(m, 4096), 0);
	snprintf(env, sizeof(env), "0,%d", ppid);
	assert_int_equal(worker_main_env(a, m, env), -EINVAL);
	snprintf(env, sizeof(env), "0,%d,%d", ppid, arena_fd(a));
	assert_int_equal(worker_main_env(a, m, env), -EBADF);
	snprintf(env, sizeof(env), "0,%d,%d", ppid, pp[0]);
	assert_int_equal(worker_main_env(a, m, env), -EBADF);
	snprintf(env, sizeof(env), "0,%d,-1", ppid);
	assert_int_equal(worker_main_env(a, m, env), -EBADF);
	snprintf(env, sizeof(env), "0,%d,%d", ppid, 1000);
	assert_int_equal(worker_main_env(a, m, env), -EBADF);
	snprintf(env, sizeof(env), "0,%d,%d", ppid, pp[1]);
	assert_int_not_equal(worker_main_env(a, m, env), -EBADF);
	assert_int_equal(fcntl(pp[1], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	close(m);
	close(pp[0]);
	close(pp[1]);
	arena_close(a);
}

/* What arena_recv(), arena_attach_env() and arena_channel_inspect() (and
 * arena_worker_main() when refused) say of channel fd m (all must agree);
 * no fd leaks. */
static int chan_verdict(struct arena *a, int m, const char *h2, size_t l2)
{
	struct arena_channel_info ci;
	struct arena *b = NULL;
	char spec[64];
	int fds[2] = { arena_fd(a), m }, ri, rr, re, d1, d2, cfd = -1;

	ri = arena_channel_inspect(m, &ci);
	rr = recv_case(SOCK_STREAM, h2, l2, fds, 2, 0);
	d1 = dup(arena_fd(a));
	d2 = dup(m);
	assert_true(d1 >= 0 && d2 >= 0);
	snprintf(spec, sizeof(spec), "ARENA_FD=%d,%d", d1, d2);
	re = arena_attach_env(&b, &cfd, spec);
	if (re == 0) {
		close(cfd);
		arena_close(b);
	} else {
		close(d1);
		close(d2);
	}
	if (ri != rr || ri != re)
		print_message("  inspect %d, recv %d, attach %d\n", ri, rr, re);
	assert_int_equal(ri, rr);
	assert_int_equal(ri, re);
	if (ri < 0 && !under_valgrind()) /* the child's code is valgrind's */
		assert_int_equal(worker_main_verdict(a, m), ri);
	return ri;
}

static void test_channel_seals(void **state)
{
	struct arena_pool_opts o = { .workers = 2 };
	struct arena_pool *p;
	struct arena *a;
	struct stat st;
	char h2[64];
	size_t l2, size;
	int chfd, m, before;

	(void)state;
	assert_int_equal(make_arena(&a, 64), 0);
	assert_int_equal(arena_pool_create(&p, a, &o), 0);
	chfd = arena_pool_channel_fd(p);
	assert_true((fcntl(chfd, F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW)) ==
		    (F_SEAL_SHRINK | F_SEAL_GROW));
	assert_int_equal(fstat(chfd, &st), 0);
	size = (size_t)st.st_size;
	l2 = capture_header(a, p, h2, sizeof(h2));
	before = count_fds();
	/* The pool's own channel, and a sealed copy: accepted. */
	assert_int_equal(chan_verdict(a, chfd, h2, l2), 0);
	m = chan_copy(chfd, size, F_SEAL_SHRINK | F_SEAL_GROW);
	assert_int_equal(chan_verdict(a, m, h2, l2), 0);
	close(m);
	/* Unsealed, or sealed against one of the two only: refused. */
	m = chan_copy(chfd, size, 0);
	assert_int_equal(chan_verdict(a, m, h2, l2), -EPERM);
	close(m);
	m = chan_copy(chfd, size, F_SEAL_SHRINK);
	assert_int_equal(chan_verdict(a, m, h2, l2), -EPERM);
	close(m);
	m = chan_copy(chfd, size, F_SEAL_GROW);
	assert_int_equal(chan_verdict(a, m, h2, l2), -EPERM);
	close(m);
	/* Truncated, sealed: corrupt.  Truncated and unsealed: refused. */
	m = chan_copy(chfd, size - 4096, F_SEAL_SHRINK | F_SEAL_GROW);
	assert_int_equal(chan_verdict(a, m, h2, l2), -EBADMSG);
	close(m);
	m = chan_copy(chfd, size - 4096, 0);
	assert_int_equal(chan_verdict(a, m, h2, l2), -EPERM);
	close(m);
	assert_int_equal(count_fds(), before);
	arena_pool_destroy(p);
	arena_close(a);
}

/* ------------------------------------------------------------------------ */
/* arena-inspect                                                             */
/* ------------------------------------------------------------------------ */

/* Runs argv with stdout and stderr into out (a file), returns the exit code. */
static int run_tool(char *const argv[], const char *out)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int r;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r)
		return -r;
	return wait_code(pid);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	if (!f || !buf) {
		if (f)
			fclose(f);
		free(buf);
		return NULL;
	}
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static void expect_output(char *const argv[], const char *out, int code, const char *has,
			  const char *has2, int is_json)
{
	int r = run_tool(argv, out);
	char *s = slurp(out);

	assert_non_null(s);
	if (r != code)
		fail_msg("%s %s: exit %d, want %d; output:\n%s", argv[0], argv[1], r, code, s);
	if (has && !strstr(s, has))
		fail_msg("output lacks '%s':\n%s", has, s);
	if (has2 && !strstr(s, has2))
		fail_msg("output lacks '%s':\n%s", has2, s);
	if (is_json) {
		size_t n = strlen(s);

		assert_true(n > 2 && s[0] == '{' && s[n - 2] == '}' && s[n - 1] == '\n');
	}
	free(s);
}

static void test_inspect(void **state)
{
	char tool[PATH_MAX], dir[] = "/tmp/test_pass_inspect.XXXXXX";
	char img[PATH_MAX], out[PATH_MAX], pidb[16], fdb[16], cfdb[16];
	struct arena_pool_opts o = { .workers = 3 };
	struct arena_pool *p;
	struct arena *a;
	int before = count_fds();

	if (under_valgrind()) {
		/* the traced tool reaches a live process through pidfd_getfd,
		 * which valgrind 3.19 does not implement */
		print_message("  skipped under valgrind: arena-inspect --pid needs pidfd_getfd\n");
		skip();
	}
	if (!tool_path(tool, sizeof(tool), "tools/arena-inspect"))
		skip();
	assert_non_null(mkdtemp(dir));
	snprintf(img, sizeof(img), "%s/image", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	assert_int_equal(make_arena(&a, 4321), 0);
	assert_int_equal(arena_save(a, img), 0);
	{
		char *argv[] = { tool, img, NULL };
		char *argj[] = { tool, "--json", img, NULL };

		expect_output(argv, out, 0, "items:      4321", "seals:", 0);
		expect_output(argj, out, 0, "\"items\": 4321", "\"arena\"", 1);
	}
	assert_int_equal(arena_pool_create(&p, a, &o), 0);
	snprintf(pidb, sizeof(pidb), "%d", (int)getpid());
	snprintf(fdb, sizeof(fdb), "%d", arena_fd(a));
	snprintf(cfdb, sizeof(cfdb), "%d", arena_pool_channel_fd(p));
	{
		char *chan[] = { tool, "--pid", pidb, "--fd", cfdb, NULL };
		char *chanj[] = { tool, "--json", "--pid", pidb, "--fd", cfdb, NULL };
		char *both[] = { tool, "--pid", pidb, "--fd", fdb, "--channel-fd", cfdb, NULL };
		char *bothj[] = { tool, "--pid", pidb, "--fd", fdb, "--channel-fd", cfdb,
				  "--json", NULL };
		char *ar[] = { tool, "--pid", pidb, "--fd", fdb, NULL };

		expect_output(chan, out, 0, "workers:    3", "sq depth", 0);
		expect_output(chanj, out, 0, "\"workers\": 3", "\"state\": ", 1);
		expect_output(both, out, 0, "items:      4321", "workers:    3", 0);
		expect_output(bothj, out, 0, "\"items\": 4321", "\"workers\": 3", 1);
		expect_output(ar, out, 0, "items:      4321", "write", 0);
	}
	assert_int_equal(arena_pool_stop(p, ARENA_STOP_DRAIN, -1), 0);
	arena_pool_destroy(p);
	/* bad input: exit 1 with a message; bad usage: exit 2 */
	{
		char notarena[PATH_MAX], badfd[16];
		char *missing[] = { tool, "/nonexistent/image", NULL };
		char *garbage[] = { tool, notarena, NULL };
		char *nofd[] = { tool, "--pid", pidb, "--fd", badfd, NULL };
		char *stdin_[] = { tool, "--pid", pidb, "--fd", "0", NULL };
		char *none[] = { tool, NULL };
		char *badnum[] = { tool, "--pid", "x1", "--fd", "3", NULL };
		char *unknown[] = { tool, "--frobnicate", img, NULL };
		char *mixed[] = { tool, img, "--fd", "3", NULL };
		FILE *f;

		snprintf(notarena, sizeof(notarena), "%s/garbage", dir);
		f = fopen(notarena, "we");
		assert_non_null(f);
		fputs("this is not an arena\n", f);
		fclose(f);
		snprintf(badfd, sizeof(badfd), "%d", 999);
		expect_output(missing, out, 1, "No such file", NULL, 0);
		expect_output(garbage, out, 1, "neither an arena", NULL, 0);
		expect_output(nofd, out, 1, "999", NULL, 0);
		expect_output(stdin_, out, 1, NULL, NULL, 0);
		expect_output(none, out, 2, "usage", NULL, 0);
		expect_output(badnum, out, 2, NULL, NULL, 0);
		expect_output(unknown, out, 2, NULL, NULL, 0);
		expect_output(mixed, out, 2, NULL, NULL, 0);
		unlink(notarena);
	}
	unlink(out);
	unlink(img);
	rmdir(dir);
	arena_close(a);
	assert_int_equal(count_fds(), before);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fork_reader),
		cmocka_unit_test(test_spawn_attach),
		cmocka_unit_test(test_export_env_exec),
		cmocka_unit_test(test_attach_env_parse),
		cmocka_unit_test(test_exec_workers_default),
		cmocka_unit_test(test_exec_workers_task_so),
		cmocka_unit_test(test_exec_workers_poison),
		cmocka_unit_test(test_worker_tool_errors),
		cmocka_unit_test(test_socket_unrelated),
		cmocka_unit_test(test_socket_local),
		cmocka_unit_test(test_recv_bad),
		cmocka_unit_test(test_channel_seals),
		cmocka_unit_test(test_worker_env_wake_fd),
		cmocka_unit_test(test_inspect),
	};
	const char *only = getenv("ARENA_TEST_FILTER");
	char exe[PATH_MAX];

	if (argc >= 4 && !strcmp(argv[1], "--child-attach"))
		return child_attach(argc, argv);
	if (argc >= 5 && !strcmp(argv[1], "--child-recv"))
		return child_recv(argv);
	/* $B/tests/test_pass -> $B */
	self_exe(exe, sizeof(exe));
	snprintf(g_build, sizeof(g_build), "%s", dirname(dirname(exe)));
	signal(SIGPIPE, SIG_IGN);
	if (only && *only)
		cmocka_set_test_filter(only);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
