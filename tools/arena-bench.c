/* SPDX-License-Identifier: MIT */
/*
 * arena-bench: the program users run first.  It reproduces the seed's
 * experiment (a Pool of 5 workers fetching items of a 100,000-item sequence
 * through a Queue(10)) with every way of sharing the sequence, in one run:
 * copy (pickled per call), proxy (a Manager server), pipe (fork copy-on-write
 * plus pipes) and arena (libarena), and prints them side by side.
 * This file: options, the run loop over modes and repetitions, exit status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static const char usage[] =
"Usage: arena-bench [OPTION]...\n"
"Runs the seed's experiment -- a pool of worker processes fetching items of a\n"
"large read-only sequence, a producer submitting index tasks and a consumer\n"
"thread taking the results, at most DEPTH in flight -- once per way of sharing\n"
"the sequence, and prints the modes side by side.  Every result is checked.\n"
"\n"
"Workload (defaults: the seed's):\n"
"  --items N        items in the sequence (100000); each is ('test_string',\n"
"                   [1, 3, 4]) encoded as u32 strlen, bytes, u32 n, n x int64\n"
"  --item-size B    bytes of each item's string: 'test_string' padded with '.'\n"
"                   or cut to B (11); suffixes k, M accepted (1k = 1024)\n"
"  --tasks N        tasks for the proxy, pipe and arena modes (100000); task t\n"
"                   fetches item t mod items\n"
"  --copy-tasks N   tasks for the copy mode, each shipping the whole sequence\n"
"                   (100, or --tasks if smaller)\n"
"  --workers N      worker processes, 1..64 (5)\n"
"  --depth N        tasks in flight, submitted but not yet received, 1..4096\n"
"                   (10, the seed's Queue(10))\n"
"  --modes LIST     comma-separated, from copy,proxy,pipe,arena or all (all):\n"
"                     copy   every task sends the serialized sequence through a\n"
"                            pipe; the worker parses it and returns item i\n"
"                            (Pool.apply_async(get_item, (seq, i)))\n"
"                     proxy  a server process holds the sequence; workers ask\n"
"                            it for item i over a Unix socket (Manager+ListProxy)\n"
"                     pipe   workers hold the sequence by fork copy-on-write;\n"
"                            indexes and results travel over pipes\n"
"                     arena  libarena: sealed memfd arena + arena_pool\n"
"  --kill-ms N      arena mode under fire: SIGKILL one worker (round robin)\n"
"                   every N ms, 1..60000, and once more just before the\n"
"                   workers' memory is read; every result must still be right\n"
"                   (the pool re-runs lost tasks, a task up to 50 times);\n"
"                   memory is read from the workers alive at that moment,\n"
"                   and the table says how many\n"
"  --reps N         repetitions of each mode, 1..100 (1); the table shows the\n"
"                   repetition with the median total time (lower median)\n"
"\n"
"Output:\n"
"  --json FILE      write the results as JSON\n"
"  --csv FILE       write the results as CSV (one row per mode)\n"
"  --svg FILE       write a bar chart (log scales) of time per task and worker\n"
"                   memory: a self-contained SVG for any browser\n"
"  -h, --help       this text\n"
"\n"
"Columns: total = first submit to last result; per task = total / tasks;\n"
"p50, p99 = a task's round trip, from the producer's submit (waiting for a\n"
"free slot included) to the consumer receiving the result; vs copy, vs proxy =\n"
"per-task speed-up; sys/task = system calls per task:\n"
"  copy, proxy, pipe: every read, write(v) and poll call made by the producer,\n"
"    the consumer, the workers and the proxy server, plus the producer's waits\n"
"    for a free slot and the consumer's wake-ups of it;\n"
"  arena: futex waits + wakes of the producer, consumer and workers, from\n"
"    arena_pool_stats (the busy path makes no other system call).\n"
"w.peakRSS = the largest worker's VmHWM, w.PSS = mean worker Pss (shared pages\n"
"divided among their users), w.seqPSS = the part of w.PSS in the sequence's own\n"
"mappings (arena: its memfd; pipe: the copy inherited by fork; proxy: none;\n"
"copy: '-', a new copy per task in the heap), all PSS = workers + proxy server;\n"
"read from /proc/PID/status, smaps_rollup and smaps after the last task, before\n"
"workers exit.\n"
"A progress line goes to stderr when it is a terminal.\n"
"\n"
"Exit status: 0 all modes ran and returned the right items, 1 a mode failed\n"
"or returned a wrong result, 2 bad options.\n";

static const char *prog = "arena-bench";

static int bad_option(const char *opt, const char *arg, const char *why)
{
	fprintf(stderr, "%s: %s '%s': %s\nTry '%s --help'.\n", prog, opt, arg, why, prog);
	return -1;
}

/* Parses a decimal count in [min, max], with k/M/G suffixes if sized. */
static int parse_u64(const char *opt, const char *arg, uint64_t min, uint64_t max,
		     bool sized, uint64_t *out)
{
	char *end, why[96];
	unsigned long long v;
	uint64_t mul = 1;

	errno = 0;
	if (arg[0] == '-' || arg[0] == '\0')
		return bad_option(opt, arg, "not a positive number");
	v = strtoull(arg, &end, 10);
	if (end == arg || errno)
		return bad_option(opt, arg, "not a number");
	if (sized && *end) {
		switch (*end++) {
		case 'k': case 'K': mul = 1ull << 10; break;
		case 'm': case 'M': mul = 1ull << 20; break;
		case 'g': case 'G': mul = 1ull << 30; break;
		default: end--; break;
		}
	}
	if (*end)
		return bad_option(opt, arg, "trailing characters");
	if (v > UINT64_MAX / mul || v * mul < min || v * mul > max) {
		snprintf(why, sizeof(why), "out of range %" PRIu64 "..%" PRIu64, min, max);
		return bad_option(opt, arg, why);
	}
	*out = v * mul;
	return 0;
}

static int parse_modes(const char *arg, unsigned *modes)
{
	char *copy = strdup(arg), *save = NULL;
	int r = 0;

	if (!copy)
		return bad_option("--modes", arg, "out of memory");
	*modes = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int m;

		if (strcmp(t, "all") == 0) {
			*modes |= (1u << MODE_COUNT) - 1;
			continue;
		}
		for (m = 0; m < MODE_COUNT && strcmp(t, mode_name(m)) != 0; m++)
			;
		if (m == MODE_COUNT) {
			char why[96];

			snprintf(why, sizeof(why), "unknown mode '%.40s' (copy, proxy, pipe, arena, all)", t);
			r = bad_option("--modes", arg, why);
			break;
		}
		*modes |= 1u << m;
	}
	if (r == 0 && *modes == 0)
		r = bad_option("--modes", arg, "no mode given");
	free(copy);
	return r;
}

/* Option parsing: the only place that exits (status 2). */
static void parse_args(int argc, char **argv, struct bench_opts *o)
{
	enum { O_ITEMS = 256, O_ITEM_SIZE, O_TASKS, O_COPY_TASKS, O_WORKERS, O_DEPTH,
	       O_MODES, O_REPS, O_JSON, O_CSV, O_SVG, O_KILL_MS };
	static const struct option longopts[] = {
		{ "items", required_argument, NULL, O_ITEMS },
		{ "item-size", required_argument, NULL, O_ITEM_SIZE },
		{ "tasks", required_argument, NULL, O_TASKS },
		{ "copy-tasks", required_argument, NULL, O_COPY_TASKS },
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "depth", required_argument, NULL, O_DEPTH },
		{ "modes", required_argument, NULL, O_MODES },
		{ "reps", required_argument, NULL, O_REPS },
		{ "kill-ms", required_argument, NULL, O_KILL_MS },
		{ "json", required_argument, NULL, O_JSON },
		{ "csv", required_argument, NULL, O_CSV },
		{ "svg", required_argument, NULL, O_SVG },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	bool copy_tasks_set = false;
	uint64_t v;
	int c, r = 0;

	*o = (struct bench_opts){ .items = 100000, .item_size = 11, .tasks = 100000,
				  .copy_tasks = 100, .workers = 5, .depth = 10,
				  .reps = 1, .modes = (1u << MODE_COUNT) - 1 };
	opterr = 0;   /* our own messages, below */
	while (r == 0 && (c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case O_ITEMS:
			r = parse_u64("--items", optarg, 1, 1ull << 32, false, &o->items);
			break;
		case O_ITEM_SIZE:
			r = parse_u64("--item-size", optarg, 0, 1ull << 30, true, &o->item_size);
			break;
		case O_TASKS:
			r = parse_u64("--tasks", optarg, 1, 1ull << 32, false, &o->tasks);
			break;
		case O_COPY_TASKS:
			r = parse_u64("--copy-tasks", optarg, 1, 1ull << 32, false, &o->copy_tasks);
			copy_tasks_set = true;
			break;
		case O_WORKERS:
			if ((r = parse_u64("--workers", optarg, 1, BENCH_MAX_WORKERS, false, &v)) == 0)
				o->workers = (unsigned)v;
			break;
		case O_DEPTH:
			if ((r = parse_u64("--depth", optarg, 1, 4096, false, &v)) == 0)
				o->depth = (unsigned)v;
			break;
		case O_REPS:
			if ((r = parse_u64("--reps", optarg, 1, BENCH_MAX_REPS, false, &v)) == 0)
				o->reps = (unsigned)v;
			break;
		case O_MODES:
			r = parse_modes(optarg, &o->modes);
			break;
		case O_KILL_MS:
			if ((r = parse_u64("--kill-ms", optarg, 1, 60000, false, &v)) == 0)
				o->kill_ms = (unsigned)v;
			break;
		case O_JSON: o->json = optarg; break;
		case O_CSV: o->csv = optarg; break;
		case O_SVG: o->svg = optarg; break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		case ':':
			fprintf(stderr, "%s: %s needs a value\nTry '%s --help'.\n", prog,
				argv[optind - 1], prog);
			exit(2);
		default:
			fprintf(stderr, "%s: unknown option '%s'\nTry '%s --help'.\n", prog,
				argv[optind - 1], prog);
			exit(2);
		}
	}
	if (r < 0)
		exit(2);
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\nTry '%s --help'.\n", prog,
			argv[optind], prog);
		exit(2);
	}
	if (!copy_tasks_set && o->tasks < o->copy_tasks)
		o->copy_tasks = o->tasks;
}

static int cmp_total(const void *a, const void *b)
{
	const struct mode_result *x = a, *y = b;
	return x->total_ns < y->total_ns ? -1 : x->total_ns > y->total_ns;
}

/* Runs one mode opt->reps times; res gets the median repetition. */
static void run_mode(struct bench_run *run, enum bench_mode m, struct mode_result *reps,
		     struct mode_result *res)
{
	const struct bench_opts *o = run->opt;
	unsigned i;

	run->ntasks = m == MODE_COPY ? o->copy_tasks : o->tasks;
	for (i = 0; i < o->reps; i++) {
		struct mode_result *x = &reps[i];
		int r;

		memset(x, 0, sizeof(*x));
		x->mode = m;
		x->tasks = run->ntasks;
		memset(run->submit_ns, 0, run->ntasks * sizeof(uint64_t));
		memset(run->done_ns, 0, run->ntasks * sizeof(uint64_t));
		progress_start(&run->pg, mode_name(m), i + 1, o->reps, run->ntasks);
		r = m == MODE_ARENA ? bench_arena(run, x) : bench_fork_mode(run, m, x);
		progress_end(&run->pg);
		if (r < 0) {
			if (!x->err[0])
				snprintf(x->err, sizeof(x->err), "%s", strerror(-r));
			*res = *x;
			res->ran = true;
			return;
		}
		x->ok = true;
	}
	qsort(reps, o->reps, sizeof(*reps), cmp_total);
	*res = reps[(o->reps - 1) / 2];
	res->ran = true;
	res->reps = o->reps;
	for (i = 0; i < o->reps; i++)
		res->rep_total_ns[i] = reps[i].total_ns;
}

static bool write_report(const char *what, const char *path,
			 int (*fn)(const char *, const struct bench_report *),
			 const struct bench_report *rep)
{
	int r;

	if (!path)
		return true;
	if ((r = fn(path, rep)) < 0) {
		fprintf(stderr, "%s: writing %s %s: %s\n", prog, what, path, strerror(-r));
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct workload wl;
	struct bench_report rep = { .opt = &o, .wl = &wl };
	struct bench_run run = { .opt = &o, .wl = &wl };
	struct mode_result *reps;
	size_t ts_map = 0, done_map = 0;
	uint64_t max_tasks;
	bool ok = true;
	int r;

	parse_args(argc, argv, &o);
	/* A dead worker must show up as EPIPE on a write, not kill us. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		fprintf(stderr, "%s: signal: %s\n", prog, strerror(errno));
		return 1;
	}
	if ((r = workload_build(&wl, o.items, o.item_size)) < 0) {
		fprintf(stderr, "%s: building %" PRIu64 " items: %s\n", prog, o.items,
			strerror(-r));
		return 1;
	}
	max_tasks = o.tasks > o.copy_tasks ? o.tasks : o.copy_tasks;
	run.submit_ns = big_alloc(max_tasks * sizeof(uint64_t), &ts_map, true);
	run.done_ns = big_alloc(max_tasks * sizeof(uint64_t), &done_map, true);
	reps = calloc(o.reps, sizeof(*reps));
	if (!run.submit_ns || !run.done_ns || !reps) {
		fprintf(stderr, "%s: out of memory for %" PRIu64 " tasks\n", prog, max_tasks);
		ok = false;
		goto out;
	}
	for (int m = 0; m < MODE_COUNT; m++) {
		if (!(o.modes & (1u << m)))
			continue;
		run_mode(&run, m, reps, &rep.res[m]);
		if (!rep.res[m].ok)
			ok = false;
	}
	report_table(stdout, &rep);
	if (fflush(stdout) != 0)
		ok = false;
	ok &= write_report("JSON", o.json, report_json, &rep);
	ok &= write_report("CSV", o.csv, report_csv, &rep);
	ok &= write_report("SVG", o.svg, report_svg, &rep);
out:
	free(reps);
	big_free(run.submit_ns, ts_map);
	big_free(run.done_ns, done_map);
	workload_free(&wl);
	return ok ? 0 : 1;
}
