/* SPDX-License-Identifier: MIT */
/*
 * The MPI part's test program, run under mpirun by run-mpi-tests.sh (one
 * mode per run; every rank checks what it sees and exits 0 when it is right,
 * printing one line "mpi-test rank R: ..." either way):
 *
 *   share NODES DIR    the arena built by a callback, made by a build_fd
 *                      callback, and loaded from an image in DIR: each node's ranks hold the same memfd (one
 *                      inode per node, NODES of them), the same items; runs
 *                      over every rank (strided) and over 3 ranks (block):
 *                      every index reaped exactly once job-wide, the tally's
 *                      count, index sum and checksum equal to those computed
 *                      here from the arena; a user reduction.
 *   corrupt KIND DIR   an image truncated (trunc) or with a bad table entry
 *                      (table) or a missing file (missing), or a build_fd
 *                      that returns an unsealed memfd (unsealed): every rank
 *                      gets -EBADMSG (-ENOENT for missing, -EPERM unsealed).
 *   fail TIMEOUT_S     share with the ARENA_MPI_FAULT points set by the
 *                      script: expects an error on every live rank.
 *   killrun VICTIM TIMEOUT_S  rank VICTIM dies (SIGKILL) in the middle of its
 *                      run: expects an error on every other rank.
 *
 * After an error a rank leaves with _exit, not MPI_Finalize: a collective
 * with a dead rank is still pending (see README "Many machines").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "arena_mpi.h"

#define N_ITEMS 10007u

static int rank = -1;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "mpi-test rank %d: ", rank);

	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stdout, "%s\n", buf);
	fflush(stdout);
}

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			say("FAILED at line %d: %s", __LINE__, #cond);         \
			say(__VA_ARGS__);                                      \
			_exit(1);                                              \
		}                                                              \
	} while (0)

/* Item i: its index, then i % 13 bytes of (i + k) & 0xff. */
static size_t item_make(uint64_t i, unsigned char *buf)
{
	size_t len = 8 + i % 13;

	memcpy(buf, &i, 8);
	for (size_t k = 8; k < len; k++)
		buf[k] = (unsigned char)(i + k);
	return len;
}

static int build(struct arena *a, void *arg)
{
	unsigned char buf[32];
	uint64_t n = *(const uint64_t *)arg;
	int r = 0;

	for (uint64_t i = 0; r == 0 && i < n; i++)
		r = arena_append(a, buf, item_make(i, buf), NULL);
	return r;
}

/* For build_fd: the arena made here, its sealed memfd handed over. */
static int build_fd(void *arg)
{
	struct arena *a;
	int r = arena_create(&a, NULL), fd;

	if (r == 0)
		r = build(a, arg);
	if (r == 0)
		r = arena_seal(a);
	fd = r == 0 ? dup(arena_fd(a)) : r;
	arena_close(a);
	return fd;
}

/* The same bytes in a memfd without seals: every rank must refuse it. */
static int build_fd_unsealed(void *arg)
{
	int fd = build_fd(arg), copy;
	struct stat st;
	void *buf;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -EIO;
	copy = memfd_create("unsealed", MFD_CLOEXEC);
	buf = malloc((size_t)st.st_size);
	if (copy < 0 || !buf || pread(fd, buf, (size_t)st.st_size, 0) != st.st_size ||
	    pwrite(copy, buf, (size_t)st.st_size, 0) != st.st_size)
		return -EIO;
	free(buf);
	close(fd);
	return copy;
}

static void check_items(const struct arena *a, uint64_t n)
{
	unsigned char want[32];
	const void *p;
	size_t len;

	CHECK(arena_count(a) == n, "count %" PRIu64, arena_count(a));
	for (uint64_t i = 0; i < n; i++) {
		size_t wl = item_make(i, want);

		CHECK(arena_get(a, i, &p, &len) == 0 && len == wl && !memcmp(p, want, wl),
		      "item %" PRIu64, i);
	}
}

/* One inode per node: every rank of a node holds the same memfd, no two
 * nodes the same one. */
static void check_one_copy_per_node(struct arena_mpi *m, int want_nodes)
{
	struct arena_mpi_layout l;
	struct stat st;
	uint64_t mine[2], *all;

	CHECK(arena_mpi_layout(m, &l) == 0, "layout");
	CHECK(l.nodes == want_nodes && l.node_size * want_nodes == l.size,
	      "nodes %d node_size %d size %d", l.nodes, l.node_size, l.size);
	CHECK(fstat(arena_fd(arena_mpi_arena(m)), &st) == 0, "fstat");
	mine[0] = (uint64_t)l.node;
	mine[1] = (uint64_t)st.st_ino;
	all = calloc((size_t)l.size * 2, sizeof(*all));
	CHECK(all != NULL, "calloc");
	CHECK(MPI_Allgather(mine, 2, MPI_UINT64_T, all, 2, MPI_UINT64_T, MPI_COMM_WORLD) == 0,
	      "allgather");
	for (int r = 0; r < l.size; r++)
		CHECK((all[2 * r] == mine[0]) == (all[2 * r + 1] == mine[1]),
		      "rank %d: node %" PRIu64 " inode %" PRIu64 " (mine %" PRIu64 " %" PRIu64 ")",
		      r, all[2 * r], all[2 * r + 1], mine[0], mine[1]);
	free(all);
}

struct seen {
	int *count;
	uint64_t n;
};

static int note(const struct arena_cqe *c, void *arg)
{
	struct seen *s = arg;

	if (c->status != 0 || c->index >= s->n)
		return -EBADMSG;
	s->count[c->index]++;
	return 0;
}

/* Runs over `ranks` ranks; checks job-wide that each index was reaped once
 * and that the tally matches what this rank computes alone. */
static void check_run(struct arena_mpi *m, uint32_t kind, uint32_t ranks, uint64_t n)
{
	const struct arena *a = arena_mpi_arena(m);
	struct seen s = { calloc(n, sizeof(int)), n };
	struct arena_mpi_run_opts o;
	struct arena_mpi_tally mine, total;
	uint64_t sum = 0, isum = 0, bytes = 0;
	int r;

	CHECK(s.count != NULL, "calloc");
	memset(&o, 0, sizeof(o));
	o.n = n;
	o.shard = kind;
	o.ranks = ranks;
	o.pool.workers = 2;
	o.on_result = note;
	o.result_arg = &s;
	o.timeout_ns = 60000000000ll;
	r = arena_mpi_run(m, &o, &mine, &total);
	CHECK(r == 0, "run: %s", arena_strerror(r));
	for (uint64_t i = 0; i < n; i++) {
		const void *p;
		size_t len;

		CHECK(arena_get(a, i, &p, &len) == 0, "get");
		sum += arena_mpi_result_hash(i, 0, p, len);
		isum += i;
		bytes += len;
	}
	CHECK(total.tasks == n && total.errors == 0 && total.index_sum == isum &&
	      total.bytes == bytes && total.checksum == sum,
	      "total tasks %" PRIu64 " errors %" PRIu64 " bytes %" PRIu64, total.tasks,
	      total.errors, total.bytes);
	CHECK(rank < (int)(ranks ? ranks : 4u) || mine.tasks == 0, "idle rank ran %" PRIu64,
	      mine.tasks);
	/* A user reduction: every index reaped exactly once over all ranks. */
	r = arena_mpi_allreduce(m, MPI_IN_PLACE, s.count, (int)n, MPI_INT, MPI_SUM, -1);
	CHECK(r == 0, "allreduce: %s", arena_strerror(r));
	for (uint64_t i = 0; i < n; i++)
		CHECK(s.count[i] == 1, "index %" PRIu64 " reaped %d times", i, s.count[i]);
	free(s.count);
}

/* Refused alike on every rank, before any pool or collective. */
static void check_bad_runs(struct arena_mpi *m, uint64_t n)
{
	struct arena_mpi_run_opts o;

	memset(&o, 0, sizeof(o));
	o.n = n + 1;
	CHECK(arena_mpi_run(m, &o, NULL, NULL) == -ERANGE, "n beyond the arena");
	o.n = 0;
	o.ranks = 5;
	CHECK(arena_mpi_run(m, &o, NULL, NULL) == -EINVAL, "more ranks than the job");
	o.ranks = 0;
	o.shard = 7;
	CHECK(arena_mpi_run(m, &o, NULL, NULL) == -EINVAL, "unknown shard kind");
	CHECK(arena_mpi_run(NULL, &o, NULL, NULL) == -EINVAL, "no share");
}

static void image_path(char *buf, size_t len, const char *dir, const char *what)
{
	snprintf(buf, len, "%s/mpi-test-%s.img", dir, what);
}

/* Rank 0 writes the image (built as the callback does); everyone waits. */
static void write_image(const char *path, uint64_t n)
{
	if (rank == 0) {
		struct arena *a;
		int r = arena_create(&a, NULL);

		if (r == 0)
			r = build(a, &n);
		if (r == 0)
			r = arena_seal(a);
		if (r == 0)
			r = arena_save(a, path);
		CHECK(r == 0, "image: %s", arena_strerror(r));
		arena_close(a);
	}
	MPI_Barrier(MPI_COMM_WORLD);
}

/* Shards alone: every index of [0, n) in exactly one rank's shard, blocks
 * in rank order and within one of each other in length; bad arguments. */
static void check_shards(void)
{
	static const uint64_t ns[] = { 0, 1, 3, 4, 5, 17, 10007 };
	struct arena_mpi_shard sh;

	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		for (int sz = 1; sz <= 6; sz++) {
			for (uint32_t kind = 0; kind < 2; kind++) {
				uint64_t n = ns[i], next = 0, lo = UINT64_MAX, hi = 0;
				unsigned char *hit = calloc(n + 1, 1);

				CHECK(hit != NULL, "calloc");
				for (int r = 0; r < sz; r++) {
					CHECK(arena_mpi_shard(n, r, sz, kind, &sh) == 0, "shard");
					for (uint64_t k = 0; k < sh.count; k++) {
						uint64_t x = arena_mpi_shard_index(&sh, k);

						CHECK(x < n && !hit[x]++, "n %" PRIu64 " size %d kind %u:"
						      " index %" PRIu64 " twice or out", n, sz, kind, x);
					}
					if (kind == ARENA_MPI_SHARD_BLOCK) {
						CHECK(sh.count == 0 || sh.first == next, "block order");
						next += sh.count;
					}
					lo = sh.count < lo ? sh.count : lo;
					hi = sh.count > hi ? sh.count : hi;
				}
				for (uint64_t x = 0; x < n; x++)
					CHECK(hit[x] == 1, "index %" PRIu64 " missed", x);
				CHECK(hi - lo <= 1, "uneven shards %" PRIu64 "..%" PRIu64, lo, hi);
				free(hit);
			}
		}
	}
	CHECK(arena_mpi_shard(10, 0, 0, 0, &sh) == -EINVAL, "size 0");
	CHECK(arena_mpi_shard(10, 3, 3, 0, &sh) == -EINVAL, "rank = size");
	CHECK(arena_mpi_shard(10, -1, 3, 0, &sh) == -EINVAL, "rank < 0");
	CHECK(arena_mpi_shard(10, 0, 3, 2, &sh) == -EINVAL, "kind");
}

static int mode_share(int nodes, const char *dir)
{
	uint64_t n = N_ITEMS;
	struct arena_mpi_opts o = { .build = build, .build_arg = &n,
				    .timeout_ns = 60000000000ll };
	struct arena_mpi *m;
	char path[4096];
	int r;

	check_shards();
	r = arena_mpi_share(&m, MPI_COMM_WORLD, &o);
	CHECK(r == 0, "share (build): %s", arena_strerror(r));
	check_one_copy_per_node(m, nodes);
	check_items(arena_mpi_arena(m), n);
	check_bad_runs(m, n);
	check_run(m, ARENA_MPI_SHARD_STRIDED, 0, n);
	check_run(m, ARENA_MPI_SHARD_BLOCK, 3, n - 5);
	arena_mpi_close(m);

	memset(&o, 0, sizeof(o));
	o.build_fd = build_fd;
	o.build_arg = &n;
	r = arena_mpi_share(&m, MPI_COMM_WORLD, &o);
	CHECK(r == 0, "share (build_fd): %s", arena_strerror(r));
	check_one_copy_per_node(m, nodes);
	check_items(arena_mpi_arena(m), n);
	arena_mpi_close(m);

	image_path(path, sizeof(path), dir, "share");
	write_image(path, n);
	memset(&o, 0, sizeof(o));
	o.path = path;
	r = arena_mpi_share(&m, MPI_COMM_WORLD, &o);
	CHECK(r == 0, "share (image): %s", arena_strerror(r));
	check_one_copy_per_node(m, nodes);
	check_items(arena_mpi_arena(m), n);
	arena_mpi_close(m);
	MPI_Barrier(MPI_COMM_WORLD);
	if (rank == 0)
		unlink(path);
	say("ok (%d nodes)", nodes);
	return 0;
}

static int mode_corrupt(const char *kind, const char *dir)
{
	struct arena_mpi_opts o = { .timeout_ns = 60000000000ll };
	struct arena_mpi *m = NULL;
	char path[4096];
	int want = -EBADMSG, r;

	if (!strcmp(kind, "unsealed")) {
		uint64_t n = N_ITEMS;

		o.build_fd = build_fd_unsealed;
		o.build_arg = &n;
		r = arena_mpi_share(&m, MPI_COMM_WORLD, &o);
		CHECK(r == -EPERM && m == NULL, "share of an unsealed memfd: %d", r);
		say("unsealed memfd: %s, as expected", arena_strerror(r));
		return 0;
	}
	image_path(path, sizeof(path), dir, kind);
	write_image(path, N_ITEMS);
	if (rank == 0) {
		struct stat st;
		int fd = open(path, O_RDWR);

		CHECK(fd >= 0 && fstat(fd, &st) == 0, "open image");
		if (!strcmp(kind, "trunc")) {
			CHECK(ftruncate(fd, st.st_size / 2) == 0, "truncate");
		} else if (!strcmp(kind, "table")) {
			/* The offset table sits at the end: an entry far
			 * beyond the data. */
			static const unsigned char ff[16] = {
				0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
				0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f };

			CHECK(pwrite(fd, ff, sizeof(ff), st.st_size - 64) == (ssize_t)sizeof(ff),
			      "pwrite");
		} else {
			CHECK(unlink(path) == 0, "unlink");
		}
		close(fd);
	}
	if (strcmp(kind, "trunc") && strcmp(kind, "table"))
		want = -ENOENT;
	MPI_Barrier(MPI_COMM_WORLD);
	o.path = path;
	r = arena_mpi_share(&m, MPI_COMM_WORLD, &o);
	CHECK(r == want && m == NULL, "share of a %s image: %d (%s)", kind, r,
	      arena_strerror(r));
	MPI_Barrier(MPI_COMM_WORLD);
	if (rank == 0)
		unlink(path);
	say("%s image: %s, as expected", kind, arena_strerror(r));
	return 0;
}

/* After an expected error: no MPI_Finalize (a collective may be pending). */
static void leave_after_error(int r, const char *what)
{
	if (r < 0) {
		say("error %d (%s) %s, as expected", r, arena_strerror(r), what);
		/* Every rank alive and in agreement: MPI is in order. */
		if (r != -ECONNRESET && r != -ETIMEDOUT) {
			MPI_Finalize();
			exit(0);
		}
		_exit(0);
	}
	say("FAILED: no error %s", what);
	_exit(1);
}

static int mode_fail(long timeout_s)
{
	uint64_t n = N_ITEMS;
	struct arena_mpi_opts o = { .build = build, .build_arg = &n,
				    .timeout_ns = timeout_s * 1000000000ll };
	struct arena_mpi *m = NULL;
	uint64_t t0 = (uint64_t)time(NULL);
	int r = arena_mpi_share(&m, MPI_COMM_WORLD, &o);

	CHECK(r < 0 || m != NULL, "no arena");
	CHECK((uint64_t)time(NULL) - t0 <= (uint64_t)timeout_s + 5, "took %" PRIu64 " s",
	      (uint64_t)time(NULL) - t0);
	leave_after_error(r, "in share");
	return 1;
}

struct victim {
	int victim;
	uint64_t seen;
};

static int maybe_die(const struct arena_cqe *c, void *arg)
{
	struct victim *v = arg;

	(void)c;
	if (rank == v->victim && ++v->seen == 1000)
		raise(SIGKILL);
	return 0;
}

/* 20 us a task, so that the run lasts while the victim dies. */
static int slow_task(struct arena_task *t)
{
	struct timespec ts = { 0, 20000 };

	nanosleep(&ts, NULL);
	return arena_task_get_item(t);
}

static int mode_killrun(int victim, long timeout_s)
{
	uint64_t n = 40000;
	struct arena_mpi_opts o = { .build = build, .build_arg = &n,
				    .timeout_ns = timeout_s * 1000000000ll };
	struct arena_mpi_run_opts ro;
	struct victim v = { victim, 0 };
	struct arena_mpi *m;
	struct arena_mpi_tally total;
	uint64_t t0;
	int r = arena_mpi_share(&m, MPI_COMM_WORLD, &o);

	CHECK(r == 0, "share: %s", arena_strerror(r));
	memset(&ro, 0, sizeof(ro));
	ro.shard = ARENA_MPI_SHARD_BLOCK;
	ro.pool.workers = 1;
	ro.pool.depth = 16;
	ro.pool.task = slow_task;
	ro.on_result = maybe_die;
	ro.result_arg = &v;
	ro.timeout_ns = timeout_s * 1000000000ll;
	t0 = (uint64_t)time(NULL);
	r = arena_mpi_run(m, &ro, NULL, &total);
	CHECK((uint64_t)time(NULL) - t0 <= (uint64_t)timeout_s + 60, "took %" PRIu64 " s",
	      (uint64_t)time(NULL) - t0);
	leave_after_error(r, "in run");
	return 1;
}

int main(int argc, char **argv)
{
	int r = 2;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	if (argc == 4 && !strcmp(argv[1], "share"))
		r = mode_share(atoi(argv[2]), argv[3]);
	else if (argc == 4 && !strcmp(argv[1], "corrupt"))
		r = mode_corrupt(argv[2], argv[3]);
	else if (argc == 3 && !strcmp(argv[1], "fail"))
		r = mode_fail(atol(argv[2]));
	else if (argc == 4 && !strcmp(argv[1], "killrun"))
		r = mode_killrun(atoi(argv[2]), atol(argv[3]));
	else
		fprintf(stderr, "usage: mpi-test share NODES DIR | corrupt trunc|table|missing|unsealed DIR"
			" | fail TIMEOUT_S | killrun VICTIM TIMEOUT_S\n");
	MPI_Finalize();
	return r;
}
