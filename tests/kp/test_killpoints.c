/* SPDX-License-Identifier: MIT */
/*
 * A worker killed at every named point of its write order (lib/killpoint.h;
 * this program links the -DARENA_KILLPOINTS build of the library, made by
 * mk/killpoint.mk under build/kp/ only).  For every point, with forked and
 * exec'd workers, ordered and unordered: every task is delivered exactly
 * once with the right bytes, or fails with -EOWNERDEAD after exactly
 * max_attempts deaths; the pool's crash count equals the deaths the workers
 * logged.
 *
 *   ARENA_KP_WORKER   the kill-point build of arena-worker (exec'd workers)
 */
#define TESTUTIL_POOL_KNOBS
#include "testutil.h"

#include <errno.h>
#include <sys/stat.h>

#include "arena.h"

#define NITEMS 12
#define NTASKS 28      /* user_data 0..27: 4 "deadly" (% 7 == 0), 4 "once" (% 7 == 3) */
#define ITEM_BYTES 40000
#define MAX_ATTEMPTS 3

static struct arena *g_arena;

static uint8_t item_byte(unsigned i, size_t k)
{
	return (uint8_t)(i * 31 + k * 7 + (k >> 8));
}

static int setup(void **state)
{
	static uint8_t buf[ITEM_BYTES + 8 * NITEMS];
	unsigned i;
	size_t k;

	(void)state;
	if (arena_create(&g_arena, NULL) < 0)
		return -1;
	for (i = 0; i < NITEMS; i++) {
		size_t len = ITEM_BYTES + 8 * i;

		for (k = 0; k < len; k++)
			buf[k] = item_byte(i, k);
		if (arena_append(g_arena, buf, len, NULL) < 0)
			return -1;
	}
	return arena_seal(g_arena);
}

static int teardown(void **state)
{
	(void)state;
	arena_close(g_arena);
	return 0;
}

static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[600];

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(dir);
}

/* Deaths per task seq, from the workers' log. */
static unsigned read_kills(const char *dir, unsigned kills[NTASKS])
{
	char path[600];
	unsigned long long s;
	unsigned n = 0;
	FILE *f;

	memset(kills, 0, NTASKS * sizeof(kills[0]));
	snprintf(path, sizeof(path), "%s/kills", dir);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fscanf(f, "%llu", &s) == 1) {
		assert_true(s < NTASKS);
		kills[s]++;
		n++;
	}
	fclose(f);
	return n;
}

/* runs: tasks submitted as many a call as there is room, in runs (the test
 * knob): deaths land inside runs of up to 4 tasks. */
static void run_point(const char *point, int exec_workers, int ordered, int runs)
{
	const char *worker = getenv("ARENA_KP_WORKER");
	char dir[] = "/tmp/arena-kp-XXXXXX";
	struct arena_pool_test_opts t;
	struct arena_pool_opts o;
	struct arena_pool *p;
	struct arena_pool_stats st;
	struct arena_cqe held, e[8];
	unsigned seen[NTASKS], kills[NTASKS], k, nkills, got = 0;
	int status[NTASKS];
	int space = !strcmp(point, "space"), have_held = 0, r;
	uint64_t deadline;

	if (exec_workers && !worker) {
		print_message("ARENA_KP_WORKER not set: exec'd workers skipped\n");
		return;
	}
	assert_non_null(mkdtemp(dir));
	setenv("ARENA_KILLPOINT", point, 1);
	setenv("ARENA_KILLPOINT_DIR", dir, 1);
	memset(&o, 0, sizeof(o));
	o.workers = 1;
	o.depth = 4;
	o.max_attempts = MAX_ATTEMPTS;
	o.result_bytes = 65536;   /* one 40 KB result at a time: a second waits */
	o.flags = ordered ? ARENA_POOL_ORDERED : 0;
	o.worker_path = exec_workers ? worker : NULL;
	memset(&t, 0, sizeof(t));
	t.o = o;
	t.o.flags |= ARENA_POOL_TEST_OPTS;
	t.runs = runs != 0;
	assert_int_equal(arena_pool_create(&p, g_arena, &t.o), 0);
	unsetenv("ARENA_KILLPOINT");
	unsetenv("ARENA_KILLPOINT_DIR");
	memset(seen, 0, sizeof(seen));
	deadline = now_ns() + 120ull * 1000000000u;
	k = 0;
	while (got < NTASKS) {
		assert_true(now_ns() < deadline);
		/* at most max_attempts deaths per deadly task, 2 per other:
		 * more means a death was not charged to its task */
		assert_true(read_kills(dir, kills) <= 4 * MAX_ATTEMPTS + 4 * 2);
		/* keep the queue full (depth 4) */
		while (k < NTASKS) {
			struct arena_sqe q[4];
			unsigned m = runs ? (NTASKS - k < 4 ? NTASKS - k : 4) : 1, j;

			/* runs: a whole run of m or nothing (room 1 would make
			 * every later entry a run of 1) */
			if (runs && 4 - (k - got) < m)
				break;

			for (j = 0; j < m; j++)
				q[j] = (struct arena_sqe){ .index = (k + j) % NITEMS,
							   .user_data = k + j };
			r = arena_pool_submit(p, q, m, 0);
			if (r == -EAGAIN)
				break;
			assert_true(r >= 1 && r <= (int)m);
			k += (unsigned)r;
		}
		r = arena_pool_reap(p, e, 1, space ? 50000000 : 5000000000ll);
		if (r == -ETIMEDOUT) {
			/* `space`: the worker waits for the result we hold */
			if (have_held)
				arena_pool_release(p, &held);
			have_held = 0;
			continue;
		}
		assert_int_equal(r, 1);
		assert_true(e[0].user_data < NTASKS);
		assert_int_equal(seen[e[0].user_data]++, 0);      /* exactly once */
		status[e[0].user_data] = e[0].status;
		assert_int_equal(e[0].seq, e[0].user_data);
		if (e[0].status == 0) {
			const void *want;
			size_t len;

			assert_int_equal(arena_get(g_arena, e[0].index, &want, &len), 0);
			assert_int_equal(e[0].index, e[0].user_data % NITEMS);
			assert_int_equal(e[0].len, len);
			assert_memory_equal(e[0].data, want, len);
		} else {
			assert_int_equal(e[0].status, -EOWNERDEAD);
		}
		if (space) {
			/* hold this result until the worker has to wait */
			if (have_held)
				arena_pool_release(p, &held);
			held = e[0];
			have_held = 1;
		} else {
			arena_pool_release(p, &e[0]);
		}
		got++;
	}
	if (have_held)
		arena_pool_release(p, &held);
	assert_int_equal(arena_pool_stop(p, 0, 10000000000ll), 0);
	assert_int_equal(arena_pool_reap(p, e, 8, 0), -ENODATA);
	assert_int_equal(arena_pool_stats(p, &st), 0);
	arena_pool_destroy(p);

	nkills = read_kills(dir, kills);
	rm_dir(dir);
	/* every death was a crash the pool saw, and no other */
	assert_int_equal(st.crashes, nkills);
	for (k = 0; k < NTASKS; k++) {
		int deadly = k % 7 == 0, once = k % 7 == 3;

		assert_int_equal(seen[k], 1);
		/* -EOWNERDEAD exactly when it killed max_attempts workers */
		assert_int_equal(status[k] == -EOWNERDEAD, kills[k] == MAX_ATTEMPTS);
		if (!deadly && !once)
			assert_int_equal(kills[k], 0);
		else if (!strcmp(point, "taken") || !strcmp(point, "cq_tail"))
			/* taken: no task is deadly there (the death is not its
			 * own); cq_tail: it completed before dying */
			assert_int_equal(kills[k], 1);
		else if (!strcmp(point, "space"))
			/* only a task that had to wait for space dies there */
			assert_true(kills[k] <= (deadly ? MAX_ATTEMPTS : 1));
		else if (deadly)
			assert_int_equal(kills[k], MAX_ATTEMPTS);
		else
			assert_int_equal(kills[k], !strcmp(point, "retry") ? 2 : 1);
	}
	if (!strcmp(point, "space"))
		assert_true(nkills > 0); /* the point was reached at all */
	print_message("  %-8s %-5s %-9s%s: %u deaths, %llu crashes seen, %llu restarts\n", point,
		      exec_workers ? "exec" : "fork", ordered ? "ordered" : "unordered",
		      runs ? " runs" : "", nkills, (unsigned long long)st.crashes,
		      (unsigned long long)st.workers_restarted);
}

#define KP_TEST(name, point)                                                  \
	static void test_##name(void **state)                                 \
	{                                                                     \
		(void)state;                                                  \
		run_point(point, 0, 0, 0);                                    \
		run_point(point, 0, 1, 0);                                    \
		run_point(point, 1, 0, 0);                                    \
		run_point(point, 1, 1, 0);                                    \
		run_point(point, 0, 0, 1);                                    \
		run_point(point, 1, 1, 1);                                    \
	}
KP_TEST(taken, "taken")
KP_TEST(inhand, "inhand")
KP_TEST(result, "result")
KP_TEST(cqe, "cqe")
KP_TEST(cq_tail, "cq_tail")
KP_TEST(retry, "retry")
KP_TEST(space, "space")

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_taken),   cmocka_unit_test(test_inhand),
		cmocka_unit_test(test_result),  cmocka_unit_test(test_cqe),
		cmocka_unit_test(test_cq_tail), cmocka_unit_test(test_retry),
		cmocka_unit_test(test_space),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
