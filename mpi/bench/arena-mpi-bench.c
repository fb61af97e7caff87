/* SPDX-License-Identifier: MIT */
/*
 * arena-mpi-bench: libarena over MPI ranks, in one run (mpirun -np N):
 *
 *  1. seed   the seed's workload (100,000 small items, the default get_item
 *            task) spread over every rank, each with its own pool: per-rank
 *            and total tasks/s;
 *  2. 20us   tasks that compute for 20 us, over every rank;
 *  3. scale  the same 20 us tasks on 1 rank, then on 2 ranks (1 worker each;
 *            the other ranks wait asleep): the speed-up of 2 ranks, --reps
 *            pairs, the median reported;
 *  4. image  a 1 GiB image file: start time with one load per node
 *            (arena_mpi_share) against one load per rank (arena_open_file in
 *            each rank, and a plain copy into each rank's heap), and the
 *            dataset's memory per node: the growth of PSS summed over the
 *            node's ranks, against one copy.
 *
 * Rank 0 prints one line per measurement; --json adds a JSON object.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "arena_mpi.h"

static struct {
	uint64_t items, tasks;
	unsigned workers, depth, work_us, image_mib;
	const char *image;
	int keep_image;
	enum arena_spin spin;
	int only_scale;
	unsigned reps;
} opt = { 100000, 20000, 1, 16, 20, 1024, NULL, 0, ARENA_SPIN_AUTO, 0, 5 };

#define MAX_REPS 15

static int rank, size;

static void die(const char *what, int r)
{
	fprintf(stderr, "arena-mpi-bench rank %d: %s: %s\n", rank, what, arena_strerror(r));
	MPI_Abort(MPI_COMM_WORLD, 1);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- workloads ----------------------------------------------------------- */

/* The seed's item: ("test_string", [1, 3, 4]) as arena-bench encodes it: a
 * 4-byte string length, the string, a 4-byte count and three int64s. */
static int build_seed(struct arena *a, void *arg)
{
	unsigned char rec[64];
	uint32_t slen = 11, n = 3;
	int64_t v[3] = { 1, 3, 4 };
	size_t len = 0;
	int r = 0;

	memcpy(rec, &slen, 4);
	memcpy(rec + 4, "test_string", 11);
	memcpy(rec + 15, &n, 4);
	memcpy(rec + 19, v, sizeof(v));
	len = 19 + sizeof(v);
	for (uint64_t i = 0; r == 0 && i < *(uint64_t *)arg; i++)
		r = arena_append(a, rec, len, NULL);
	return r;
}

static int task_work(struct arena_task *t)
{
	uint64_t end = now_ns() + (uint64_t)*(const unsigned *)t->arg * 1000u;

	while (now_ns() < end)
		__builtin_ia32_pause();
	if (t->out_cap < 8)
		return -EMSGSIZE;
	memcpy(t->out, &t->index, 8);
	return 8;
}

/* ---- throughput ---------------------------------------------------------- */

struct tp {
	double total_tps;       /* all tasks / the slowest rank's time */
	double rank_tps[256];
	uint64_t rank_tasks[256];
	unsigned ranks;
};

static struct tp run_tp(struct arena_mpi *m, uint64_t n, unsigned ranks, int work)
{
	struct arena_mpi_run_opts o;
	struct arena_mpi_tally mine, total;
	uint64_t mt[2], *all = calloc((size_t)size * 2, sizeof(uint64_t));
	struct tp res;
	int r;

	memset(&o, 0, sizeof(o));
	memset(&res, 0, sizeof(res));
	o.n = n;
	o.shard = ARENA_MPI_SHARD_BLOCK;
	o.ranks = ranks;
	o.pool.workers = opt.workers;
	o.pool.depth = opt.depth;
	o.pool.spin = opt.spin;
	if (work) {
		o.pool.task = task_work;
		o.pool.task_arg = &opt.work_us;
	}
	o.timeout_ns = -1;
	r = arena_mpi_barrier(m, -1);
	if (r == 0)
		r = arena_mpi_run(m, &o, &mine, &total);
	if (r < 0)
		die("run", r);
	if (total.tasks != n || total.errors)
		die("run: wrong tally", -EBADMSG);
	mt[0] = mine.tasks;
	mt[1] = mine.ns;
	MPI_Gather(mt, 2, MPI_UINT64_T, all, 2, MPI_UINT64_T, 0, MPI_COMM_WORLD);
	res.ranks = ranks ? ranks : (unsigned)size;
	res.total_tps = (double)total.tasks * 1e9 / (double)total.ns;
	for (unsigned i = 0; i < res.ranks && i < 256; i++) {
		res.rank_tasks[i] = all[2 * i];
		res.rank_tps[i] = all[2 * i + 1] ? (double)all[2 * i] * 1e9 / (double)all[2 * i + 1] : 0;
	}
	free(all);
	return res;
}

static void print_tp(const char *name, const struct tp *t)
{
	if (rank != 0)
		return;
	printf("%-6s ranks %u x %u worker(s), depth %u: total %.0f tasks/s; per rank:", name,
	       t->ranks, opt.workers, opt.depth, t->total_tps);
	for (unsigned i = 0; i < t->ranks && i < 256; i++)
		printf(" %.0f", t->rank_tps[i]);
	printf("\n");
}

/* ---- memory and start time ----------------------------------------------- */

/* This process's PSS in KiB (smaps_rollup). */
static uint64_t pss_kib(void)
{
	char line[256];
	uint64_t kib = 0;
	FILE *f = fopen("/proc/self/smaps_rollup", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Pss: %" SCNu64, &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Reads one byte a page, as a user of every item would. */
static uint64_t touch(const void *p, uint64_t len)
{
	const volatile unsigned char *c = p;
	uint64_t s = 0;

	for (uint64_t i = 0; i < len; i += 4096)
		s += c[i];
	return s;
}

static int build_image(struct arena *a, void *arg)
{
	uint64_t mib = *(const uint64_t *)arg;
	int r = 0;

	for (uint64_t i = 0; r == 0 && i < mib; i++) {
		void *d;

		r = arena_append_uninit(a, 1u << 20, NULL, &d);
		if (r == 0)
			memset(d, (int)(i * 131 + 7), 1u << 20);
	}
	return r;
}

struct start {
	double secs;      /* slowest rank, from a common barrier */
	double node_mem;  /* PSS growth summed over node 0's ranks / image size */
};

enum load_kind { LOAD_SHARE, LOAD_OPEN, LOAD_HEAP };

static struct start measure_load(struct arena_mpi *m, enum load_kind k, uint64_t img_size)
{
	struct arena_mpi_layout l;
	struct arena_mpi *sm = NULL;
	struct arena *a = NULL;
	struct arena_mpi_opts so = { .path = opt.image, .timeout_ns = -1 };
	unsigned char *heap = NULL;
	uint64_t before, grew, t0, el, node_sum, sink = 0;
	struct start st;
	int r = 0;

	arena_mpi_layout(m, &l);
	before = pss_kib();
	MPI_Barrier(MPI_COMM_WORLD);
	t0 = now_ns();
	if (k == LOAD_SHARE) {
		r = arena_mpi_share(&sm, MPI_COMM_WORLD, &so);
	} else if (k == LOAD_OPEN) {
		r = arena_open_file(&a, opt.image);
	} else {
		int fd = open(opt.image, O_RDONLY | O_CLOEXEC);
		uint64_t done = 0;

		heap = malloc(img_size);
		if (fd < 0 || !heap)
			r = -ENOMEM;
		while (r == 0 && done < img_size) {
			ssize_t n = read(fd, heap + done, img_size - done);

			if (n <= 0)
				r = n < 0 ? -errno : -EBADMSG;
			else
				done += (uint64_t)n;
		}
		if (fd >= 0)
			close(fd);
	}
	if (r < 0)
		die("load", r);
	el = now_ns() - t0;
	/* Every rank reads the whole dataset once, then we count. */
	if (k == LOAD_SHARE)
		sink += touch(arena_base(arena_mpi_arena(sm)), arena_size(arena_mpi_arena(sm)));
	else if (k == LOAD_OPEN)
		sink += touch(arena_base(a), arena_size(a));
	else
		sink += touch(heap, img_size);
	MPI_Barrier(MPI_COMM_WORLD);
	grew = pss_kib();
	grew = grew > before ? grew - before : 0;
	MPI_Allreduce(MPI_IN_PLACE, &el, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
	MPI_Allreduce(&grew, &node_sum, 1, MPI_UINT64_T, MPI_SUM, l.node_comm);
	MPI_Bcast(&node_sum, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD); /* node 0's */
	st.secs = (double)el / 1e9;
	st.node_mem = (double)node_sum * 1024.0 / (double)img_size;
	MPI_Barrier(MPI_COMM_WORLD);
	arena_mpi_close(sm);
	arena_close(a);
	free(heap);
	if (sink == 1)
		fprintf(stderr, " ");
	return st;
}

static uint64_t make_image(struct arena_mpi *m)
{
	uint64_t bytes = 0, mib = opt.image_mib;
	static char def[4096];
	int r = 0;

	if (!opt.image) {
		const char *d = getenv("TMPDIR");

		snprintf(def, sizeof(def), "%s/arena-mpi-bench-%u.img", d ? d : "/tmp", opt.image_mib);
		opt.image = def;
	}
	if (rank == 0) {
		struct arena *a = NULL;
		struct stat sb;

		r = arena_create(&a, NULL);
		if (r == 0)
			r = build_image(a, &mib);
		if (r == 0)
			r = arena_seal(a);
		if (r == 0)
			r = arena_save(a, opt.image);
		if (r == 0)
			bytes = arena_size(a);
		arena_close(a);
		/* Page cache warm for every variant alike: read it once. */
		if (r == 0 && stat(opt.image, &sb) == 0) {
			int fd = open(opt.image, O_RDONLY);
			static char buf[1 << 20];

			while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0)
				;
			if (fd >= 0)
				close(fd);
		}
	}
	MPI_Bcast(&r, 1, MPI_INT, 0, MPI_COMM_WORLD);
	if (r < 0)
		die("image", r);
	MPI_Bcast(&bytes, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
	(void)m;
	return bytes;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: mpirun -np N arena-mpi-bench [--items N] [--tasks N] [--workers N]\n"
		"       [--depth N] [--work-us N] [--image PATH] [--image-mib N] [--keep-image]\n"
		"       [--spin auto|never|always] [--scale-only] [--reps N]\n"
		"  --items      seed workload items (100000), each task gets one\n"
		"  --tasks      20 us tasks in the 20us and scale runs (20000)\n"
		"  --workers    workers per rank (1); --depth: tasks in flight per rank (16)\n"
		"  --image-mib  the image's size (1024); --image: where ($TMPDIR or /tmp)\n"
		"  --spin auto|never|always  the pools' spin policy (auto)\n"
		"  --scale-only only the 1-rank and 2-rank runs of 20 us tasks\n"
		"  --reps N     pairs of those runs, the median reported (5, at most 15)\n");
}

static int parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "items", 1, 0, 'i' }, { "tasks", 1, 0, 't' }, { "workers", 1, 0, 'w' },
		{ "depth", 1, 0, 'd' }, { "work-us", 1, 0, 'u' }, { "image", 1, 0, 'f' },
		{ "image-mib", 1, 0, 'm' }, { "keep-image", 0, 0, 'k' }, { "spin", 1, 0, 's' },
		{ "scale-only", 0, 0, 'o' }, { "reps", 1, 0, 'r' }, { 0, 0, 0, 0 } };
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'i': opt.items = strtoull(optarg, NULL, 0); break;
		case 't': opt.tasks = strtoull(optarg, NULL, 0); break;
		case 'w': opt.workers = (unsigned)atoi(optarg); break;
		case 'd': opt.depth = (unsigned)atoi(optarg); break;
		case 'u': opt.work_us = (unsigned)atoi(optarg); break;
		case 'f': opt.image = optarg; break;
		case 'm': opt.image_mib = (unsigned)atoi(optarg); break;
		case 'k': opt.keep_image = 1; break;
		case 'o': opt.only_scale = 1; break;
		case 'r': opt.reps = (unsigned)atoi(optarg); break;
		case 's':
			if (!strcmp(optarg, "auto"))
				opt.spin = ARENA_SPIN_AUTO;
			else if (!strcmp(optarg, "never"))
				opt.spin = ARENA_SPIN_NEVER;
			else if (!strcmp(optarg, "always"))
				opt.spin = ARENA_SPIN_ALWAYS;
			else
				return -1;
			break;
		default: return -1;
		}
	}
	if (optind != argc || !opt.items || !opt.tasks || !opt.workers || !opt.image_mib ||
	    !opt.reps || opt.reps > MAX_REPS)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct arena_mpi_opts so = { .build = build_seed, .build_arg = &opt.items,
				     .timeout_ns = -1 };
	struct arena_mpi_layout l;
	struct arena_mpi *m;
	struct tp seed, work, one, two;
	struct start sh, op, hp;
	uint64_t img;
	int r;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (parse(argc, argv) < 0) {
		if (rank == 0)
			usage();
		MPI_Finalize();
		return 2;
	}
	r = arena_mpi_share(&m, MPI_COMM_WORLD, &so);
	if (r < 0)
		die("share", r);
	arena_mpi_layout(m, &l);
	if (rank == 0)
		printf("arena-mpi-bench: %d ranks, %d node(s) of %d\n", size, l.nodes, l.node_size);
	if (!opt.only_scale) {
		seed = run_tp(m, opt.items, 0, 0);
		print_tp("seed", &seed);
		work = run_tp(m, opt.tasks, 0, 1);
		print_tp("20us", &work);
	}
	/* 1 rank, then 2, reps times: the median pair by ratio is reported
	 * (the machine's load moves between runs; a pair is close in time). */
	memset(&two, 0, sizeof(two));
	{
		struct tp ones[MAX_REPS], twos[MAX_REPS];
		double ratio[MAX_REPS];
		unsigned med = 0;

		for (unsigned i = 0; i < opt.reps; i++) {
			ones[i] = run_tp(m, opt.tasks, 1, 1);
			twos[i] = size >= 2 ? run_tp(m, opt.tasks, 2, 1) : ones[i];
			ratio[i] = twos[i].total_tps / ones[i].total_tps;
		}
		for (unsigned i = 0; i < opt.reps; i++) {
			unsigned below = 0;

			for (unsigned j = 0; j < opt.reps; j++)
				below += ratio[j] < ratio[i] || (ratio[j] == ratio[i] && j < i);
			if (below == opt.reps / 2)
				med = i;
		}
		one = ones[med];
		two = twos[med];
		if (rank == 0) {
			printf("scale  2 ranks / 1 rank, %u pairs:", opt.reps);
			for (unsigned i = 0; i < opt.reps; i++)
				printf(" %.2fx", ratio[i]);
			printf("; the median pair:\n");
		}
	}
	print_tp("scale", &one);
	if (size >= 2)
		print_tp("scale", &two);
	if (opt.only_scale) {
		if (rank == 0)
			printf("scale  2 ranks %.2fx 1 rank\n", two.total_tps / one.total_tps);
		arena_mpi_close(m);
		MPI_Finalize();
		return 0;
	}
	img = make_image(m);
	hp = measure_load(m, LOAD_HEAP, img);
	op = measure_load(m, LOAD_OPEN, img);
	sh = measure_load(m, LOAD_SHARE, img);
	if (rank == 0) {
		printf("image  %.0f MiB, %d ranks on node 0: start (slowest rank) / memory per node"
		       " (PSS growth summed over the node's ranks, in copies)\n",
		       (double)img / 1048576.0, l.node_size);
		printf("image  one load per node (arena_mpi_share):  %7.3f s  %.2fx\n", sh.secs,
		       sh.node_mem);
		printf("image  one load per rank (arena_open_file):  %7.3f s  %.2fx\n", op.secs,
		       op.node_mem);
		printf("image  copy per rank (read into the heap):   %7.3f s  %.2fx\n", hp.secs,
		       hp.node_mem);
		printf("goals  memory per node %.2fx one copy (goal <= 1.1x; copy per rank %.2fx);"
		       " start one load per node %.3f s vs per rank %.3f s;"
		       " 20 us tasks 2 ranks %.2fx 1 rank (goal >= 1.8x)\n",
		       sh.node_mem, hp.node_mem, sh.secs, op.secs,
		       size >= 2 ? two.total_tps / one.total_tps : 0.0);
		printf("json {\"ranks\":%d,\"seed_tps\":%.0f,\"work_tps\":%.0f,\"one_rank_tps\":%.0f,"
		       "\"two_ranks_tps\":%.0f,\"share_s\":%.3f,\"open_per_rank_s\":%.3f,"
		       "\"heap_per_rank_s\":%.3f,\"share_mem\":%.3f,\"heap_mem\":%.3f}\n",
		       size, seed.total_tps, work.total_tps, one.total_tps,
		       size >= 2 ? two.total_tps : 0.0, sh.secs, op.secs, hp.secs, sh.node_mem,
		       hp.node_mem);
		if (!opt.keep_image)
			unlink(opt.image);
	}
	arena_mpi_close(m);
	MPI_Finalize();
	return 0;
}
