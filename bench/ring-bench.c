/* SPDX-License-Identifier: MIT */
/*
 * ring-bench: the pool's rings measured against their floors, in one run.
 *
 *  - arena pool throughput for workers x depth, tiny tasks (the default task,
 *    ARENA_OP_COPY of a ~40-byte item) and tasks that compute for --work-us:
 *    a producer thread submits batches of up to 64, a consumer thread reaps
 *    batches of up to 64 and releases them; futex calls per task come from
 *    arena_pool_stats();
 *  - the same with one thread that keeps up to depth tasks in flight and
 *    reaps (no consumer thread: the Python module's shape), at
 *    --one-thread-depth (default 10);
 *  - the same shapes over a pool of forked workers fed through pipes (the
 *    baseline a C programmer writes without libarena); the ratio arena/pipe;
 *  - for each of them, the CPU time per task of every process involved
 *    (producer and consumer threads, workers), the share of the CPUs other
 *    processes took meanwhile (a row measured under load shows it), and for
 *    work tasks the efficiency: ideal time per task (work / min(workers,
 *    CPUs)) over the measured one, the compute floor: the same tasks in
 *    min(workers, CPUs) processes that only compute, and the wake floor: the
 *    same, each process waking a sleeping parent once per depth of its own
 *    tasks (what the fewest wake-ups a pool of that depth needs cost alone);
 *  - the round trip of one task at a time: back to back ("hot") and after a
 *    random pause longer than the spin budget, so every side sleeps ("idle");
 *  - the floor of the tiny depth-1024 rows: the same bytes through shared
 *    memory with no protocol at all (spsc.h, bench/spsc-floor), with one
 *    parent thread and with a producer and a consumer thread;
 *  - floors: a futex ping-pong between two processes (the wake-up cost: its
 *    latency and the CPU time a round trip costs both sides; again with a
 *    1 ms timeout on every wait, and on one CPU), the same after the idle
 *    rounds' pause and not pinned (the idle rounds' floor: waking a CPU
 *    that went idle), and a spin ping-pong through one shared cache line
 *    (the hardware cost).
 *
 * Every result is checked against arena_get() and counted exactly once; a
 * wrong result exits 1.  A missed goal is reported, never an exit code: the
 * machines are shared and noisy (DESIGN-NOTES 7), so read ratios from one run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cpu_relax.h"
#include "spsc.h"

#include <arena.h>

#define NITEMS       100000u   /* items in the arena */
#define ITEM_MIN     32u       /* item sizes: ITEM_MIN..ITEM_MAX, ~40 average */
#define ITEM_MAX     48u
#define BATCH        64u       /* submit / reap batch */
#define MAX_LIST     16
#define MAX_WORKERS  64u
#define MAX_DEPTH    4096u     /* the pipe pool keeps <= 32 KiB of indexes per pipe */
#define SLICE_NS     1000000000ll        /* bounded waits, so a hang is seen */
#define STALL_NS     30000000000ull      /* no progress for this long: fail */
#define IDLE_PAUSE_MIN_NS 100000u        /* idle round trips: pause 100..500 us, */
#define IDLE_PAUSE_MAX_NS 500000u        /* longer than the 20 us spin budget */

enum kind { KIND_TINY, KIND_WORK, KIND_COUNT };
static const char *const kind_name[KIND_COUNT] = { "tiny", "work" };

struct options {
	uint64_t tasks;            /* base count: tiny tasks at depth > 1 */
	bool quick;
	unsigned workers[MAX_LIST], nworkers;
	unsigned depths[MAX_LIST], ndepths;
	const char *json;
	enum arena_spin spin;
	uint32_t spin_ns;
	uint32_t work_us;
	unsigned one_depth;        /* one-thread rows at this depth, 0: none */
	unsigned hot_rounds, idle_rounds, floor_rounds;
};

static struct options opt = {
	.tasks = 300000,
	.workers = { 1, 2, 5 }, .nworkers = 3,
	.depths = { 1, 10, 1024 }, .ndepths = 3,
	.spin = ARENA_SPIN_AUTO,
	.work_us = 20,
	.one_depth = 10,
	.hot_rounds = 20000, .idle_rounds = 2000, .floor_rounds = 20000,
};

static struct arena *g_arena;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static __attribute__((format(printf, 1, 2), noreturn)) void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "ring-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	/* xorshift64*: reproducible item contents and pauses. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}


/*
 * The computing task's body: a fixed amount of computation, about us
 * microseconds of CPU (calibrated once against the thread's CPU-time clock,
 * so preemption during calibration does not skew it).  Not a wait on the
 * wall clock: a worker preempted in the middle of a task must finish the
 * task's work afterwards, so the CPU that other threads take from the
 * workers shows in the time per task, as it does for real work.
 */
static double loop_per_us;      /* iterations of work_loop() per us of CPU */

/* Not inlined, and on a line of its own: every pool, the floors and the
 * calibration then run these very instructions at one address.  Inlined,
 * each caller had its own copy at its own alignment (four of them), so a
 * pool could look faster or slower only for where its copy fell.  Measured
 * on 2026-11-30 (12 alternated runs of each build, `--workers 1,2,5
 * --depths 1024`): the workers' CPU a 20 us task moved by at most 0.3%,
 * the arena's and the batched pipe pool's alike; the copies did not differ
 * here, but nothing made sure they would not. */
static __attribute__((noinline, aligned(64))) uint64_t work_loop(uint64_t n)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (uint64_t i = 0; i < n; i++) {
		x ^= x >> 13;
		x *= 0xff51afd7ed558ccdull;   /* a dependent chain: no overlap */
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

static void calibrate_work(void)
{
	double best = 0;

	/* The fastest of a few rounds: the least disturbed (caches, frequency). */
	for (int r = 0; r < 5; r++) {
		uint64_t n = 200000, t0 = 0, t1 = 0;
		struct timespec a, b;

		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
		work_loop(n);
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
		t0 = (uint64_t)a.tv_sec * 1000000000ull + (uint64_t)a.tv_nsec;
		t1 = (uint64_t)b.tv_sec * 1000000000ull + (uint64_t)b.tv_nsec;
		if (t1 > t0 && n * 1e3 / (double)(t1 - t0) > best)
			best = n * 1e3 / (double)(t1 - t0);
	}
	loop_per_us = best > 0 ? best : 100;
}

static void busy_us(uint32_t us)
{
	work_loop((uint64_t)(us * loop_per_us));
}

static int task_work(struct arena_task *t)
{
	busy_us(*(const uint32_t *)t->arg);
	return arena_task_get_item(t);
}

/* 1 when data/len is exactly item index of the arena. */
static bool item_ok(uint64_t index, const void *data, uint64_t len)
{
	const void *d;
	size_t l;

	if (arena_get(g_arena, index, &d, &l) < 0 || l != len)
		return false;
	return len == 0 || (data && memcmp(d, data, len) == 0);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct pct {
	double p50_us, p99_us, max_us;
};

static struct pct percentiles(uint64_t *s, size_t n)
{
	struct pct p = { 0 };

	if (!n)
		return p;
	qsort(s, n, sizeof(*s), cmp_u64);
	p.p50_us = s[n / 2] / 1e3;
	p.p99_us = s[n * 99 / 100 < n ? n * 99 / 100 : n - 1] / 1e3;
	p.max_us = s[n - 1] / 1e3;
	return p;
}

/*
 * CPU time and scheduler counters of one thread or process: the time from a
 * CPU-time clock (exact), the counters from /proc/PID/task/TID/sched (absent
 * without CONFIG_SCHED_DEBUG: they read 0, has_sched false).
 */
struct usage {
	uint64_t cpu_ns;        /* time on a CPU, user + system */
	uint64_t migrations;    /* moves from one CPU to another */
	uint64_t vcsw, ivcsw;   /* switches: voluntary (slept), involuntary (preempted) */
	uint64_t minflt;        /* minor page faults: first touches of pages, 8-16 us
				 * each on a guest whose page tables the
				 * hypervisor shadows (README, "Session 16") */
};

static bool has_sched = true;

static void usage_add(struct usage *a, const struct usage *b)
{
	a->cpu_ns += b->cpu_ns;
	a->migrations += b->migrations;
	a->vcsw += b->vcsw;
	a->ivcsw += b->ivcsw;
	a->minflt += b->minflt;
}

static struct usage usage_sub(struct usage a, const struct usage *b)
{
	a.cpu_ns -= b->cpu_ns;
	a.migrations -= b->migrations;
	a.vcsw -= b->vcsw;
	a.ivcsw -= b->ivcsw;
	a.minflt -= b->minflt;
	return a;
}

/* Minor faults of one thread: field 10 of its stat, counted after the ')'
 * that ends the command name (which may hold spaces). */
static void read_minflt(pid_t pid, pid_t tid, struct usage *u)
{
	char path[64], line[1024], *p;
	unsigned long long v;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	if (!(f = fopen(path, "r")))
		return;
	if (fgets(line, sizeof(line), f) && (p = strrchr(line, ')')) &&
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %llu", &v) == 1)
		u->minflt = v;
	fclose(f);
}

static void read_sched(pid_t pid, pid_t tid, struct usage *u)
{
	char path[64], line[256];
	FILE *f;

	read_minflt(pid, tid, u);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/sched", (int)pid, (int)tid);
	if (!(f = fopen(path, "r"))) {
		has_sched = false;
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		uint64_t v;

		if (!colon)
			continue;
		v = strtoull(colon + 1, NULL, 10);
		if (!strncmp(line, "se.nr_migrations ", 17))
			u->migrations = v;
		else if (!strncmp(line, "nr_voluntary_switches ", 22))
			u->vcsw = v;
		else if (!strncmp(line, "nr_involuntary_switches ", 24))
			u->ivcsw = v;
	}
	fclose(f);
}

static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	if (clock_gettime(clk, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The whole machine's busy and stolen CPU time so far (/proc/stat, clock
 * ticks): what other processes took during a row is busy minus ours. */
struct machine {
	uint64_t busy_ns, steal_ns;
	bool ok;
};

static struct machine machine_now(void)
{
	struct machine m = { 0 };
	unsigned long long v[8] = { 0 };
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		return m;
	if (hz > 0 && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
			     &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		/* user nice system idle iowait irq softirq steal */
		m.busy_ns = (v[0] + v[1] + v[2] + v[5] + v[6]) * (1000000000ull / (uint64_t)hz);
		m.steal_ns = v[7] * (1000000000ull / (uint64_t)hz);
		m.ok = true;
	}
	fclose(f);
	return m;
}

/* The calling thread's usage so far. */
static struct usage thread_usage(void)
{
	struct usage u = { .cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) };

	read_sched(getpid(), (pid_t)syscall(SYS_gettid), &u);
	return u;
}

/* The usage so far of single-threaded processes (the workers), summed. */
static struct usage procs_usage(const pid_t *pids, unsigned n)
{
	struct usage sum = { 0 };

	for (unsigned i = 0; i < n; i++) {
		struct usage u = { 0 };
		clockid_t clk;

		if (pids[i] <= 0 || clock_getcpuclockid(pids[i], &clk) != 0)
			die("no CPU clock for worker %d", (int)pids[i]);
		u.cpu_ns = clock_ns(clk);
		read_sched(pids[i], pids[i], &u);
		usage_add(&sum, &u);
	}
	return sum;
}

static void build_arena(void)
{
	struct arena_create_opts co = { .name = "ring-bench" };
	int r = arena_create(&g_arena, &co);

	if (r < 0)
		die("arena_create: %s", arena_strerror(r));
	for (unsigned i = 0; i < NITEMS; i++) {
		size_t len = ITEM_MIN + rng() % (ITEM_MAX - ITEM_MIN + 1);
		uint8_t *d;

		if ((r = arena_append_uninit(g_arena, len, NULL, (void **)&d)) < 0)
			die("arena_append_uninit: %s", arena_strerror(r));
		for (size_t k = 0; k < len; k++)
			d[k] = (uint8_t)rng();
	}
	if ((r = arena_seal(g_arena)) < 0)
		die("arena_seal: %s", arena_strerror(r));
}

/* ------------------------------------------------------------------------ */
/* Arena pool: throughput                                                    */
/* ------------------------------------------------------------------------ */

struct tp_result {
	uint64_t tasks, ns;
	double tasks_per_s, us_per_task;
	uint64_t futex_calls;       /* arena: waits + wakes of every side */
	double futex_per_task;
	struct arena_pool_stats st;
	/* Over the timed run.  prod: the producer thread, or the one thread
	 * that submits and reaps (the one-thread shape, the pipe pools'
	 * parent); cons: the consumer thread (two-thread shape only); work:
	 * every worker process, summed. */
	struct usage prod, cons, work;
	double cpu_us_per_task;     /* prod + cons + work */
	double efficiency;          /* work tasks: ideal / us_per_task, else 0 */
	double floor_eff;           /* work tasks: compute floor / us_per_task */
	/* The CPUs' share (of wall time x CPUs) that other processes took or
	 * the hypervisor stole meanwhile: a row measured under load shows it;
	 * -1 when /proc/stat is unreadable.  Tick resolution (10 ms). */
	double others, steal;
	struct machine m0;
	bool valid;
};

static void tp_start(struct tp_result *res)
{
	res->m0 = machine_now();
}

/* min(workers, CPUs): how many tasks can run at once. */
static unsigned floor_par(unsigned workers)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	return ncpu > 0 && (unsigned long)ncpu < workers ? (unsigned)ncpu : workers;
}

/* Work tasks: the best a pool can do is work_us over min(workers, CPUs). */
static double ideal_us_per_task(unsigned workers)
{
	return (double)opt.work_us / floor_par(workers);
}

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts);

/*
 * `par` forked processes, started together, run the work tasks 0..n-1
 * between them (task k in process k % par), no pool; each wakes the parent,
 * asleep on a futex, after every `every` of its own tasks (0: never) and
 * when it is done, and the parent does nothing but sleep again.  Returns
 * the wall time a task; the parent's CPU time a task in *parent_us.
 */
static double floor_run(unsigned par, uint64_t n, unsigned every, double *parent_us)
{
	_Atomic uint32_t *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				   -1, 0);
	pid_t pid[MAX_WORKERS];
	uint64_t t0, t1;
	struct usage u0;
	int go[2], st;
	char c = 0;

	if (w == MAP_FAILED)
		die("out of memory");
	/* w[0]: wake-ups posted; w[1]: processes still computing. */
	atomic_init(&w[0], 0);
	atomic_init(&w[1], par);
	if (pipe2(go, O_CLOEXEC) < 0)
		die("pipe2: %s", strerror(errno));
	fflush(NULL);
	for (unsigned i = 0; i < par; i++) {
		if ((pid[i] = fork()) < 0)
			die("fork: %s", strerror(errno));
		if (pid[i] == 0) {
			unsigned since = 0;

			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(go[1]);
			if (read(go[0], &c, 1) < 0)   /* EOF: start */
				_exit(3);
			for (uint64_t k = i; k < n; k += par) {
				busy_us(opt.work_us);
				if (every && ++since == every) {
					since = 0;
					atomic_fetch_add_explicit(&w[0], 1, memory_order_release);
					futex(&w[0], FUTEX_WAKE, 1, NULL);
				}
			}
			atomic_fetch_sub_explicit(&w[1], 1, memory_order_release);
			atomic_fetch_add_explicit(&w[0], 1, memory_order_release);
			futex(&w[0], FUTEX_WAKE, 1, NULL);
			_exit(0);
		}
	}
	close(go[0]);
	u0 = thread_usage();
	t0 = now_ns();
	close(go[1]);
	for (uint32_t seen = 0; atomic_load_explicit(&w[1], memory_order_acquire);) {
		struct timespec ts = { 1, 0 };

		futex(&w[0], FUTEX_WAIT, seen, &ts);
		seen = atomic_load_explicit(&w[0], memory_order_acquire);
	}
	for (unsigned i = 0; i < par; i++) {
		while (waitpid(pid[i], &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			die("%s floor: a process failed", every ? "wake" : "compute");
	}
	t1 = now_ns();
	u0 = usage_sub(thread_usage(), &u0);
	munmap((void *)w, 4096);
	*parent_us = u0.cpu_ns / 1e3 / n;
	return (t1 - t0) / 1e3 / n;
}

static uint64_t floor_tasks(void)
{
	return opt.tasks / 10 < 1000 ? 1000 : opt.tasks / 10;
}

/*
 * The floors, each measured once per (processes, every), on first use, and
 * kept here: every = 0 is the compute floor, every = d a wake floor.  At
 * most MAX_LIST process counts times the depths, the one-thread depth and 0.
 */
#define FLOORS (MAX_LIST * (MAX_LIST + 2))
static struct floor_memo { unsigned par, every; double us, parent_us; } floors[FLOORS];
static unsigned nfloors;

static const struct floor_memo *floor_find(unsigned par, unsigned every)
{
	for (unsigned k = 0; k < nfloors; k++)
		if (floors[k].par == par && floors[k].every == every)
			return &floors[k];
	return NULL;
}

static const struct floor_memo *floor_get(unsigned workers, unsigned every)
{
	unsigned par = floor_par(workers);
	const struct floor_memo *m = floor_find(par, every);
	struct floor_memo *f;

	if (m)
		return m;
	if (nfloors == FLOORS)
		die("more floors than rows");
	f = &floors[nfloors++];
	f->par = par;
	f->every = every;
	f->us = floor_run(par, floor_tasks(), every, &f->parent_us);
	return f;
}

/*
 * The compute floor: the same work tasks in min(workers, CPUs) processes
 * that only compute.  Its time per task is the best any pool can do on this
 * machine at this moment (two busy CPUs may compute slower than one: shared
 * caches, the host).
 */
static double compute_floor(unsigned workers)
{
	return floor_get(workers, 0)->us;
}

/*
 * The wake floor: the compute floor's processes, each of which wakes the
 * sleeping parent after every `every` tasks of its own: one wake-up per
 * `every` tasks, the fewest a pool with that many tasks in flight can make
 * with a parent that sleeps (else its workers run dry).  What the wake-ups
 * alone cost the work, on this machine at this moment: a pool's parent also
 * reaps and refills at each.  The parent's CPU time a task in *parent_us.
 */
static double wake_floor(unsigned workers, unsigned every, double *parent_us)
{
	const struct floor_memo *f = floor_get(workers, every);

	*parent_us = f->parent_us;
	return f->us;
}

static void tp_finish(struct tp_result *res, enum kind k, unsigned workers)
{
	uint64_t cpu = res->prod.cpu_ns + res->cons.cpu_ns + res->work.cpu_ns;

	res->tasks_per_s = res->tasks * 1e9 / res->ns;
	res->us_per_task = res->ns / 1e3 / res->tasks;
	res->cpu_us_per_task = cpu / 1e3 / res->tasks;
	res->efficiency = k == KIND_WORK && opt.work_us ?
			  ideal_us_per_task(workers) / res->us_per_task : 0;
	res->floor_eff = k == KIND_WORK && opt.work_us ?
			 compute_floor(workers) / res->us_per_task : 0;
	struct machine m1 = machine_now();
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	double cap = (double)res->ns * (ncpu > 0 ? ncpu : 1);

	res->others = res->steal = -1;
	if (res->m0.ok && m1.ok) {
		double o = (double)(m1.busy_ns - res->m0.busy_ns) - (double)cpu;

		res->others = o > 0 ? o / cap : 0;
		res->steal = (double)(m1.steal_ns - res->m0.steal_ns) / cap;
	}
	res->valid = true;
}

struct tp_ctx {
	struct arena_pool *pool;
	uint64_t n;
	uint8_t *seen;
	uint64_t got, t_end;
	struct usage cons;          /* the consumer thread's, over its life */
	_Atomic int err;
	char msg[200];
};

static void tp_fail(struct tp_ctx *c, int err, const char *msg)
{
	if (atomic_load(&c->err))
		return;
	snprintf(c->msg, sizeof(c->msg), "%s", msg);
	atomic_store(&c->err, err);   /* after msg: the reader sees both */
}

/* Checks and counts n reaped completions, then releases them. */
static void tp_take(struct tp_ctx *c, struct arena_cqe *cqe, int n)
{
	for (int i = 0; i < n; i++) {
		const struct arena_cqe *q = &cqe[i];
		uint64_t t = q->user_data;

		if (q->status < 0)
			tp_fail(c, q->status, "a task failed");
		else if (t >= c->n || c->seen[t])
			tp_fail(c, -EBADMSG, "unknown or duplicate completion");
		else if (q->index != t % NITEMS || !item_ok(q->index, q->data, q->len))
			tp_fail(c, -EBADMSG, "wrong result bytes");
		else {
			c->seen[t] = 1;
			c->got++;
		}
	}
	arena_pool_release_many(c->pool, cqe, (unsigned)n);
}

/* Reaps up to BATCH completions, waiting up to a slice.  Returns how many
 * (0 after a timeout), or -1 after an error (recorded in c). */
static int tp_reap(struct tp_ctx *c, struct arena_cqe *cqe, uint64_t *last)
{
	int n = arena_pool_reap(c->pool, cqe, BATCH, SLICE_NS);

	if (n == -ETIMEDOUT) {
		if (now_ns() - *last > STALL_NS)
			tp_fail(c, -ETIMEDOUT, "no completion for 30 s");
		return 0;
	}
	if (n < 0) {
		char m[120];

		snprintf(m, sizeof(m), "arena_pool_reap: %s", arena_strerror(n));
		tp_fail(c, n, m);
		return -1;
	}
	*last = now_ns();
	tp_take(c, cqe, n);
	return n;
}

static void *tp_consumer(void *arg)
{
	struct tp_ctx *c = arg;
	struct arena_cqe cqe[BATCH];
	uint64_t last = now_ns();
	struct usage u0 = thread_usage();

	while (c->got < c->n && !atomic_load(&c->err))
		if (tp_reap(c, cqe, &last) < 0)
			break;
	c->t_end = now_ns();
	c->cons = usage_sub(thread_usage(), &u0);
	return NULL;
}

static struct arena_pool *pool_new(unsigned workers, unsigned depth, enum kind k)
{
	struct arena_pool_opts po = {
		.workers = workers,
		.depth = depth,
		.task = k == KIND_WORK ? task_work : arena_task_get_item,
		.task_arg = &opt.work_us,
		.spin = opt.spin,
		.spin_ns = opt.spin_ns,
	};
	struct arena_pool *p;
	int r;

	fflush(NULL);   /* the pool forks */
	if ((r = arena_pool_create(&p, g_arena, &po)) < 0)
		die("arena_pool_create(workers %u, depth %u): %s", workers, depth,
		    arena_strerror(r));
	return p;
}

static void pool_end(struct arena_pool *p)
{
	int r = arena_pool_stop(p, ARENA_STOP_DRAIN, 10 * SLICE_NS);

	if (r < 0)
		die("arena_pool_stop: %s", arena_strerror(r));
	arena_pool_destroy(p);   /* reaps the workers */
}

static void fill_sqes(struct arena_sqe *sqe, uint64_t t, unsigned m)
{
	for (unsigned i = 0; i < m; i++)
		sqe[i] = (struct arena_sqe){ .index = (t + i) % NITEMS, .user_data = t + i,
					     .op = ARENA_OP_COPY };
}

/* Submits m tasks from t on, waiting for room (the two-thread shape). */
static void submit_all(struct tp_ctx *c, struct arena_sqe *sqe, uint64_t t, unsigned m,
		       uint64_t *last)
{
	unsigned off = 0;

	fill_sqes(sqe, t, m);
	while (off < m && !atomic_load(&c->err)) {
		int r = arena_pool_submit(c->pool, sqe + off, m - off, SLICE_NS);

		if (r > 0) {
			off += (unsigned)r;
			*last = now_ns();
		} else if (r == -ETIMEDOUT) {
			if (now_ns() - *last > STALL_NS)
				tp_fail(c, r, "submission blocked for 30 s");
		} else {
			char msg[120];

			snprintf(msg, sizeof(msg), "arena_pool_submit: %s", arena_strerror(r));
			tp_fail(c, r < 0 ? r : -EIO, msg);
		}
	}
}

/*
 * threads 2: a producer thread submits batches of up to BATCH (waiting for
 * room), a consumer thread reaps batches and releases them.  threads 1: one
 * thread keeps up to depth tasks in flight and reaps (what a binding's
 * imap() does, the Python module's shape): it submits whatever room there
 * is without waiting, then waits for completions.
 */
static struct tp_result arena_throughput(unsigned workers, unsigned depth, enum kind k,
					 uint64_t n, unsigned threads)
{
	struct tp_result res = { .tasks = n };
	struct tp_ctx c = { .n = n };
	struct arena_sqe sqe[BATCH];
	struct arena_cqe cqe[BATCH];
	pid_t pids[MAX_WORKERS];
	struct usage p0, w0;
	pthread_t th;
	uint64_t t0, last, t = 0;
	int r;

	/* Created before the consumer thread starts: the pool forks. */
	c.pool = pool_new(workers, depth, k);
	if (!(c.seen = calloc(n, 1)))
		die("out of memory");
	for (unsigned i = 0; i < workers; i++)
		if ((pids[i] = arena_pool_worker_pid(c.pool, i)) <= 0)
			die("arena_pool_worker_pid(%u): %s", i, arena_strerror(pids[i]));
	if (threads == 2 && (r = pthread_create(&th, NULL, tp_consumer, &c)) != 0)
		die("pthread_create: %s", strerror(r));
	w0 = procs_usage(pids, workers);
	p0 = thread_usage();
	tp_start(&res);
	t0 = last = now_ns();
	if (threads == 2) {
		for (; t < n && !atomic_load(&c.err); t += BATCH)
			submit_all(&c, sqe, t, n - t < BATCH ? (unsigned)(n - t) : BATCH, &last);
		res.prod = usage_sub(thread_usage(), &p0);
		pthread_join(th, NULL);
	} else {
		uint64_t inflight = 0;

		while (c.got < n && !atomic_load(&c.err)) {
			while (t < n && inflight < depth && !atomic_load(&c.err)) {
				uint64_t room = depth - inflight;
				unsigned m = (unsigned)(n - t < room ? n - t : room);

				m = m < BATCH ? m : BATCH;
				fill_sqes(sqe, t, m);
				r = arena_pool_submit(c.pool, sqe, m, 0);
				if (r <= 0) {
					char msg[120];

					snprintf(msg, sizeof(msg), "arena_pool_submit with room: %s",
						 arena_strerror(r < 0 ? r : -EIO));
					tp_fail(&c, r < 0 ? r : -EIO, msg);
					break;
				}
				t += (uint64_t)r;
				inflight += (uint64_t)r;
			}
			r = tp_reap(&c, cqe, &last);
			if (r < 0)
				break;
			inflight -= (uint64_t)r;
		}
		c.t_end = now_ns();
		res.prod = usage_sub(thread_usage(), &p0);
	}
	res.work = usage_sub(procs_usage(pids, workers), &w0);
	res.cons = c.cons;
	if (atomic_load(&c.err) || c.got != n)
		die("arena pool, %s tasks, %u workers, depth %u, %u thread%s: %s (%" PRIu64
		    " of %" PRIu64 " results)", kind_name[k], workers, depth, threads,
		    threads > 1 ? "s" : "", atomic_load(&c.err) ? c.msg : "count mismatch",
		    c.got, n);
	arena_pool_stats(c.pool, &res.st);
	if (res.st.submitted != n || res.st.reaped != n)
		die("arena pool stats: submitted %" PRIu64 " reaped %" PRIu64 ", expected %"
		    PRIu64, res.st.submitted, res.st.reaped, n);
	pool_end(c.pool);
	free(c.seen);
	res.ns = c.t_end - t0;
	res.futex_calls = res.st.producer_waits + res.st.producer_wakes +
			  res.st.consumer_waits + res.st.consumer_wakes +
			  res.st.worker_waits + res.st.worker_wakes;
	res.futex_per_task = (double)res.futex_calls / n;
	tp_finish(&res, k, workers);
	return res;
}

/* ------------------------------------------------------------------------ */
/* Arena pool: one task at a time                                            */
/* ------------------------------------------------------------------------ */

struct lat_result {
	unsigned workers, rounds;
	struct pct hot, idle;
	double hot_futex_per_round, idle_futex_per_round;
	uint64_t idle_worker_waits;
	bool valid;
};

static uint64_t futex_total(const struct arena_pool_stats *s)
{
	return s->producer_waits + s->producer_wakes + s->consumer_waits +
	       s->consumer_wakes + s->worker_waits + s->worker_wakes;
}

/*
 * What one system call costs here: getppid, which does nothing, in a loop;
 * the fastest of a few rounds (the least disturbed).  Every sleep, wake-up
 * and pipe write of every pool is at least one, so it bounds how cheap a
 * wake-up can be on this machine: about 0.1 us on bare metal, ten times that
 * in some virtual machines (page-table isolation, a paravirtual kernel).
 */
static double syscall_floor_ns;   /* measured once, with the other floors */

static double syscall_ns(void)
{
	double best = 0;

	for (int r = 0; r < 5; r++) {
		const unsigned n = 20000;
		uint64_t t0 = now_ns();

		for (unsigned i = 0; i < n; i++)
			syscall(SYS_getppid);
		double ns = (double)(now_ns() - t0) / n;

		if (!best || ns < best)
			best = ns;
	}
	return best;
}

/* The idle rounds' pause, before each round trip that follows one. */
static void idle_pause(void)
{
	uint64_t pause = IDLE_PAUSE_MIN_NS + rng() % (IDLE_PAUSE_MAX_NS - IDLE_PAUSE_MIN_NS + 1);
	struct timespec ts = { 0, (long)pause };

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

static void one_round(struct arena_pool *p, uint64_t r, uint64_t *ns)
{
	struct arena_cqe c;
	uint64_t t0 = now_ns(), t1;
	int n;

	if ((n = arena_pool_submit1(p, r % NITEMS, r)) < 0)
		die("arena_pool_submit1: %s", arena_strerror(n));
	while ((n = arena_pool_reap(p, &c, 1, SLICE_NS)) == -ETIMEDOUT)
		if (now_ns() - t0 > STALL_NS)
			die("one task: no completion for 30 s");
	t1 = now_ns();
	if (n != 1)
		die("arena_pool_reap: %s", arena_strerror(n < 0 ? n : -EIO));
	if (c.status < 0 || c.user_data != r || c.index != r % NITEMS ||
	    !item_ok(c.index, c.data, c.len))
		die("one task: wrong completion (round %" PRIu64 ")", r);
	arena_pool_release(p, &c);
	*ns = t1 - t0;
}

static struct lat_result arena_latency(unsigned workers)
{
	struct lat_result res = { .workers = workers };
	unsigned hot = opt.hot_rounds, idle = opt.idle_rounds;
	unsigned warm = hot / 10 < 100 ? hot / 10 : 100;
	uint64_t *s = malloc(sizeof(*s) * (hot > idle ? hot : idle) + 8);
	struct arena_pool_stats a, b;
	struct arena_pool *p = pool_new(workers, 0, KIND_TINY);
	uint64_t r = 0, dummy;

	if (!s)
		die("out of memory");
	for (unsigned i = 0; i < warm; i++)
		one_round(p, r++, &dummy);
	arena_pool_stats(p, &a);
	for (unsigned i = 0; i < hot; i++)
		one_round(p, r++, &s[i]);
	arena_pool_stats(p, &b);
	res.hot = percentiles(s, hot);
	res.hot_futex_per_round = hot ? (double)(futex_total(&b) - futex_total(&a)) / hot : 0;
	a = b;
	for (unsigned i = 0; i < idle; i++) {
		idle_pause();
		one_round(p, r++, &s[i]);
	}
	arena_pool_stats(p, &b);
	res.idle = percentiles(s, idle);
	res.idle_futex_per_round = idle ? (double)(futex_total(&b) - futex_total(&a)) / idle : 0;
	res.idle_worker_waits = b.worker_waits - a.worker_waits;
	if (b.reaped != r)
		die("one task: %" PRIu64 " reaped of %" PRIu64, b.reaped, r);
	pool_end(p);
	free(s);
	res.rounds = hot;
	res.valid = true;
	return res;
}

/* ------------------------------------------------------------------------ */
/* Baseline: a pool over pipes                                               */
/* ------------------------------------------------------------------------ */

/*
 * Each worker has a task pipe (8-byte indexes in) and a result pipe (records
 * out: u64 index, u32 length, item bytes).  The parent, one thread, keeps at
 * most depth tasks in flight, gives each new task to the worker with the
 * fewest outstanding, poll()s the result pipes and reads whatever is there.
 * Two variants:
 *  - "pipe": one message per task, as multiprocessing.Pool and arena-bench's
 *    pipe mode do: one write() per index, the worker read()s one index and
 *    write()s one result record; the goal's ratio is against this one;
 *  - "batch": the same pool written to batch: each worker's new indexes go in
 *    one write(), a worker reads up to 64 at once and writes their records in
 *    one write().  It shows what a pipe pool can do when depth allows.
 * At most depth * 8 <= 32 KiB of indexes sit in a task pipe (capacity 64 KiB),
 * so the parent never blocks writing; it reads results whenever poll() says.
 */
struct rec_hdr {
	uint64_t index;
	uint32_t len;
} __attribute__((packed));

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static __attribute__((noreturn)) void pipe_worker(int tfd, int rfd, enum kind k, bool batch)
{
	static uint8_t in[BATCH * 8];
	static uint8_t out[BATCH * (sizeof(struct rec_hdr) + ITEM_MAX) + 4096];
	size_t have = 0;

	for (;;) {
		ssize_t n = read(tfd, in + have, (batch ? sizeof(in) : 8) - have);
		size_t used = 0, o = 0;

		if (n == 0)
			_exit(0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(3);
		}
		have += (size_t)n;
		for (; have - used >= 8; used += 8) {
			struct rec_hdr h;
			const void *d;
			size_t l;

			memcpy(&h.index, in + used, 8);
			if (k == KIND_WORK)
				busy_us(opt.work_us);
			if (arena_get(g_arena, h.index, &d, &l) < 0 || l > ITEM_MAX + 4096u)
				_exit(4);
			h.len = (uint32_t)l;
			memcpy(out + o, &h, sizeof(h));
			memcpy(out + o + sizeof(h), d, l);
			o += sizeof(h) + l;
			if (!batch) {
				if (write_all(rfd, out, o) < 0)
					_exit(5);
				o = 0;
			}
		}
		memmove(in, in + used, have - used);
		have -= used;
		if (o && write_all(rfd, out, o) < 0)
			_exit(5);
	}
}

struct pworker {
	pid_t pid;
	int tfd, rfd;
	unsigned out;           /* tasks in flight */
	uint64_t *fifo;         /* task numbers in flight, in order */
	unsigned fhead, ftail, fmask;
	uint64_t *pend;         /* indexes to write this round */
	unsigned npend;
	uint8_t *buf;           /* result bytes read, not yet parsed */
	size_t have;
};

#define PBUF (256u * 1024u)

static struct tp_result pipe_throughput(unsigned workers, unsigned depth, enum kind k,
					uint64_t n, bool batch)
{
	struct tp_result res = { .tasks = n };
	struct pworker *w = calloc(workers, sizeof(*w));
	struct pollfd *pfd = calloc(workers, sizeof(*pfd));
	uint8_t *seen = calloc(n, 1);
	unsigned fsize = 1;
	uint64_t next = 0, done = 0, inflight = 0, t0;
	pid_t pids[MAX_WORKERS];
	struct usage p0, w0;
	const char *err = NULL;

	if (!w || !pfd || !seen)
		die("out of memory");
	while (fsize < depth)
		fsize <<= 1;
	fflush(NULL);
	for (unsigned i = 0; i < workers; i++) {
		int tp[2], rp[2];

		w[i].fifo = malloc(fsize * sizeof(uint64_t));
		w[i].pend = malloc(depth * sizeof(uint64_t));
		w[i].buf = malloc(PBUF);
		w[i].fmask = fsize - 1;
		if (!w[i].fifo || !w[i].pend || !w[i].buf)
			die("out of memory");
		if (pipe2(tp, O_CLOEXEC) < 0 || pipe2(rp, O_CLOEXEC) < 0)
			die("pipe2: %s", strerror(errno));
		w[i].pid = fork();
		if (w[i].pid < 0)
			die("fork: %s", strerror(errno));
		if (w[i].pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			/* Only this worker's ends stay open: EOF is the stop. */
			for (unsigned j = 0; j < i; j++) {
				close(w[j].tfd);
				close(w[j].rfd);
			}
			close(tp[1]);
			close(rp[0]);
			pipe_worker(tp[0], rp[1], k, batch);
		}
		close(tp[0]);
		close(rp[1]);
		w[i].tfd = tp[1];
		w[i].rfd = rp[0];
		pfd[i] = (struct pollfd){ .fd = rp[0], .events = POLLIN };
	}
	for (unsigned i = 0; i < workers; i++)
		pids[i] = w[i].pid;
	w0 = procs_usage(pids, workers);
	p0 = thread_usage();
	tp_start(&res);
	t0 = now_ns();
	while (done < n && !err) {
		/* Dispatch: fill up to depth, least outstanding first. */
		for (; next < n && inflight < depth; next++, inflight++) {
			unsigned best = 0;

			for (unsigned i = 1; i < workers; i++)
				if (w[i].out < w[best].out)
					best = i;
			w[best].pend[w[best].npend++] = next % NITEMS;
			w[best].fifo[w[best].ftail++ & w[best].fmask] = next;
			w[best].out++;
		}
		for (unsigned i = 0; i < workers; i++) {
			for (unsigned j = 0; j < w[i].npend && !err; j += batch ? w[i].npend : 1)
				if (write_all(w[i].tfd, w[i].pend + j,
					      (batch ? w[i].npend : 1) * 8u) < 0)
					err = "write to a task pipe failed";
			w[i].npend = 0;
		}
		if (err)
			break;
		int r = poll(pfd, workers, (int)(STALL_NS / 1000000));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r == 0 ? "no result for 30 s" : "poll failed";
			break;
		}
		for (unsigned i = 0; i < workers && !err; i++) {
			struct pworker *x = &w[i];
			ssize_t got;
			size_t used = 0;

			if (!pfd[i].revents)
				continue;
			got = read(x->rfd, x->buf + x->have, PBUF - x->have);
			if (got <= 0) {
				if (got < 0 && errno == EINTR)
					continue;
				err = "a worker died (result pipe closed)";
				break;
			}
			x->have += (size_t)got;
			for (;;) {
				struct rec_hdr h;
				uint64_t t;

				if (x->have - used < sizeof(h))
					break;
				memcpy(&h, x->buf + used, sizeof(h));
				if (h.len > ITEM_MAX) {
					err = "bad result record";
					break;
				}
				if (x->have - used < sizeof(h) + h.len)
					break;
				if (x->out == 0) {
					err = "result with no task in flight";
					break;
				}
				t = x->fifo[x->fhead++ & x->fmask];
				x->out--;
				if (t >= n || seen[t] || h.index != t % NITEMS ||
				    !item_ok(h.index, x->buf + used + sizeof(h), h.len)) {
					err = "wrong or duplicate result";
					break;
				}
				seen[t] = 1;
				done++;
				inflight--;
				used += sizeof(h) + h.len;
			}
			memmove(x->buf, x->buf + used, x->have - used);
			x->have -= used;
		}
	}
	res.ns = now_ns() - t0;
	res.prod = usage_sub(thread_usage(), &p0);
	if (!err)
		res.work = usage_sub(procs_usage(pids, workers), &w0);
	/* Closing the task pipes stops the workers; reap every one. */
	for (unsigned i = 0; i < workers; i++) {
		close(w[i].tfd);
		if (err)
			kill(w[i].pid, SIGKILL);
	}
	for (unsigned i = 0; i < workers; i++) {
		int st;

		while (waitpid(w[i].pid, &st, 0) < 0 && errno == EINTR)
			;
		if (!err && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			err = "a pipe worker exited with an error";
		close(w[i].rfd);
		free(w[i].fifo);
		free(w[i].pend);
		free(w[i].buf);
	}
	free(w);
	free(pfd);
	free(seen);
	if (err || done != n)
		die("%s pool, %s tasks, %u workers, depth %u: %s (%" PRIu64 " of %" PRIu64
		    " results)", batch ? "batched pipe" : "pipe", kind_name[k], workers, depth,
		    err ? err : "count mismatch",
		    done, n);
	tp_finish(&res, k, workers);
	return res;
}

/* ------------------------------------------------------------------------ */
/* Floors: futex and spin ping-pong between two processes                    */
/* ------------------------------------------------------------------------ */

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	/* No FUTEX_PRIVATE_FLAG: the word is shared between processes. */
	return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

static void pin_to(int cpu)
{
	cpu_set_t s;

	if (cpu < 0)
		return;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	sched_setaffinity(0, sizeof(s), &s);
}

/* Waits until *w != old: spinning, or FUTEX_WAIT with timeouts of timeout_ns
 * (1 s when 0).  Returns false after 10 s. */
static bool wait_change(_Atomic uint32_t *w, uint32_t old, bool use_futex, long timeout_ns)
{
	uint64_t start = 0;
	unsigned i = 0;

	while (atomic_load_explicit(w, memory_order_acquire) == old) {
		if (use_futex) {
			struct timespec ts = { timeout_ns ? 0 : 1, timeout_ns };

			futex(w, FUTEX_WAIT, old, &ts);   /* EAGAIN/EINTR/timeout: recheck */
		} else {
			cpu_relax();
		}
		if ((++i & 0xffff) == 0 || use_futex) {
			if (!start)
				start = now_ns();
			else if (now_ns() - start > 10000000000ull)
				return false;
		}
	}
	return true;
}

struct floor_result {
	struct pct p;
	unsigned rounds;
	long timeout_ns;            /* each FUTEX_WAIT's timeout; 0: 1 s */
	double cpu_us_per_rt;       /* both processes' CPU time a round trip */
	bool pinned, idle, valid;
};

/* same_cpu: both processes on one CPU (a wake-up without an IPI: what a
 * round trip costs when the scheduler keeps the pair together).
 * timeout_ns: a timeout shorter than the kernel's tick makes every wait arm
 * and cancel a timer that reprograms the timer hardware (lib/sys.h
 * sys_look_ns); the CPU time a round trip shows what that costs.
 * idle: the idle one-task rounds' floor.  Each round trip follows the same
 * pause as theirs (both sides asleep meanwhile), and neither process is
 * pinned, as the pool's are not: a CPU left idle that long may be in a deep
 * sleep state or, in a virtual machine, given back to the host, and waking
 * it costs what no back-to-back round trip shows. */
static struct floor_result pingpong(bool use_futex, bool same_cpu, unsigned rounds,
				    long timeout_ns, bool idle)
{
	struct floor_result res = { .rounds = rounds, .timeout_ns = timeout_ns, .idle = idle };
	struct rusage cru;
	struct usage u0;
	unsigned warm = rounds / 10 < 100 ? rounds / 10 : 100;
	cpu_set_t saved;
	int cpu[2] = { -1, -1 }, st;
	uint64_t *s = malloc(sizeof(*s) * rounds + 8);
	void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	_Atomic uint32_t *seq = m;
	bool ok = true;
	pid_t pid;

	if (!s || m == MAP_FAILED)
		die("out of memory");
	atomic_init(seq, 0);
	/* Two different CPUs when there are two: the cross-CPU cost. */
	if (!idle && sched_getaffinity(0, sizeof(saved), &saved) == 0 &&
	    CPU_COUNT(&saved) >= 2) {
		for (int c = 0, k = 0; c < CPU_SETSIZE && k < 2; c++)
			if (CPU_ISSET(c, &saved))
				cpu[k++] = c;
		if (same_cpu)
			cpu[1] = cpu[0];
		res.pinned = true;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		pin_to(cpu[1]);
		for (uint32_t k = 0; k < warm + rounds; k++) {
			if (!wait_change(seq, 2 * k, use_futex, timeout_ns))
				_exit(3);
			atomic_store_explicit(seq, 2 * k + 2, memory_order_release);
			if (use_futex)
				futex(seq, FUTEX_WAKE, 1, NULL);
		}
		_exit(0);
	}
	pin_to(cpu[0]);
	u0 = thread_usage();
	for (uint32_t k = 0; k < warm + rounds && ok; k++) {
		uint64_t t0;

		if (idle)
			idle_pause();
		t0 = now_ns();
		atomic_store_explicit(seq, 2 * k + 1, memory_order_release);
		if (use_futex)
			futex(seq, FUTEX_WAKE, 1, NULL);
		ok = wait_change(seq, 2 * k + 1, use_futex, timeout_ns);
		if (k >= warm)
			s[k - warm] = now_ns() - t0;
	}
	u0 = usage_sub(thread_usage(), &u0);
	if (res.pinned)
		sched_setaffinity(0, sizeof(saved), &saved);
	if (!ok)
		kill(pid, SIGKILL);
	while (wait4(pid, &st, 0, &cru) < 0 && errno == EINTR)
		;
	res.cpu_us_per_rt = (u0.cpu_ns + (cru.ru_utime.tv_sec + cru.ru_stime.tv_sec) * 1e9 +
			     (cru.ru_utime.tv_usec + cru.ru_stime.tv_usec) * 1e3) /
			    1e3 / (warm + rounds);
	if (!ok || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("%s ping-pong: the other side did not answer", use_futex ? "futex" : "spin");
	res.p = percentiles(s, rounds);
	munmap(m, 4096);
	free(s);
	res.valid = true;
	return res;
}

/*
 * The tiny depth-1024 rows' floor (spsc.h), in the same minute as the rows:
 * sf[0] one parent thread, sf[1] a producer and a consumer thread.
 */
static void spsc_floors(struct spsc_result sf[2])
{
	uint64_t n = opt.quick ? 200000 : 2000000;
	struct spsc_shared *s = spsc_map();

	if (!s)
		die("out of memory");
	for (unsigned t = 0; t < 2; t++)
		if (spsc_run(s, SPSC_FULL32, n, 1024, t + 1, &sf[t]) < 0)
			die("spsc floor, %u thread%s: a wrong completion or result", t + 1,
			    t ? "s" : "");
	spsc_unmap(s);
}

/* ------------------------------------------------------------------------ */
/* Goals, report, options                                                    */
/* ------------------------------------------------------------------------ */

struct config {
	enum kind kind;
	unsigned threads;           /* the arena's parent threads: 2 or 1 */
	unsigned workers, depth;
	uint64_t tasks;
	struct tp_result arena, pipe, batch;
};

struct goal {
	const char *name, *shape, *unit, *op;
	double target, value;
	bool measured, pass;
};

static void set_goal(struct goal *g, bool measured, double value)
{
	g->measured = measured;
	g->value = value;
	if (!measured)
		return;
	if (!strcmp(g->op, ">="))
		g->pass = value >= g->target;
	else if (!strcmp(g->op, "<="))
		g->pass = value <= g->target;
	else
		g->pass = value < g->target;
}

static uint64_t tasks_for(enum kind k, unsigned depth)
{
	uint64_t n = opt.tasks;

	/* Fewer where each task costs a wake-up or 20 us; more where the rate is
	 * high, so that the bulk rate is timed over more than a few ms. */
	if (k == KIND_TINY)
		n = depth == 1 ? n / 10 : depth >= 256 ? n * 5 : n;
	else
		n = depth == 1 ? n / 40 : n / 10;
	return n < 100 ? 100 : n;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: ring-bench [options]\n"
"  arena pool vs a pipe pool vs futex/spin ping-pong floors, in one run\n"
"  --tasks N         base task count: tiny tasks at depth > 1 (default 300000;\n"
"                    x5 at depth >= 256, /10 at depth 1; work tasks /10, /40 at depth 1)\n"
"  --quick           much smaller counts (< 10 s)\n"
"  --workers LIST    worker counts, comma-separated (default 1,2,5)\n"
"  --depths LIST     depths (tasks in flight), comma-separated (default 1,10,1024)\n"
"  --work-us N       CPU time a work task computes, in us (default 20)\n"
"  --one-thread-depth N  rows where one thread submits up to N ahead and reaps\n"
"                    (the Python module's shape), for every worker count\n"
"                    (default 10; 0: none)\n"
"  --rounds N        one-task round trips, hot (default 20000; idle = N/10)\n"
"  --spin POLICY     pool spin policy: auto (default), never, always\n"
"  --spin-ns N       pool spin budget in ns (default: the library's)\n"
"  --json FILE       write every number to FILE as JSON\n"
"  --help            this text\n"
"Exit: 0 done (goals are PASS/MISS, not exit codes), 1 a wrong result or error,\n"
"2 bad options.\n");
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_list(const char *s, unsigned max, unsigned *out, unsigned *n)
{
	char buf[256], *rest = buf, *tok;

	if (!s || strlen(s) >= sizeof(buf))
		return false;
	strcpy(buf, s);
	*n = 0;
	/* strsep, not strtok: an empty item ("1,,2", "1,") is an error. */
	while ((tok = strsep(&rest, ","))) {
		uint64_t v;

		if (*n >= MAX_LIST || !parse_u64(tok, 1, max, &v))
			return false;
		out[(*n)++] = (unsigned)v;
	}
	return *n > 0;
}

static __attribute__((noreturn)) void bad(const char *what, const char *arg)
{
	fprintf(stderr, "ring-bench: bad %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
	usage(stderr);
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	enum { O_TASKS = 256, O_WORKERS, O_DEPTHS, O_JSON, O_SPIN, O_SPIN_NS, O_WORK, O_ROUNDS,
	       O_ONE };
	static const struct option lo[] = {
		{ "tasks", required_argument, NULL, O_TASKS },
		{ "quick", no_argument, NULL, 'q' },
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "depths", required_argument, NULL, O_DEPTHS },
		{ "json", required_argument, NULL, O_JSON },
		{ "spin", required_argument, NULL, O_SPIN },
		{ "spin-ns", required_argument, NULL, O_SPIN_NS },
		{ "work-us", required_argument, NULL, O_WORK },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "one-thread-depth", required_argument, NULL, O_ONE },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	bool tasks_set = false, rounds_set = false;
	uint64_t v;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_TASKS:
			if (!parse_u64(optarg, 1, 1000000000, &v))
				bad("--tasks", optarg);
			opt.tasks = v;
			tasks_set = true;
			break;
		case 'q':
			opt.quick = true;
			break;
		case O_WORKERS:
			if (!parse_list(optarg, MAX_WORKERS, opt.workers, &opt.nworkers))
				bad("--workers (1..64, comma-separated)", optarg);
			break;
		case O_DEPTHS:
			if (!parse_list(optarg, MAX_DEPTH, opt.depths, &opt.ndepths))
				bad("--depths (1..4096, comma-separated)", optarg);
			break;
		case O_JSON:
			if (!*optarg)
				bad("--json", "empty file name");
			opt.json = optarg;
			break;
		case O_SPIN:
			if (!strcmp(optarg, "auto"))
				opt.spin = ARENA_SPIN_AUTO;
			else if (!strcmp(optarg, "never"))
				opt.spin = ARENA_SPIN_NEVER;
			else if (!strcmp(optarg, "always"))
				opt.spin = ARENA_SPIN_ALWAYS;
			else
				bad("--spin (auto, never, always)", optarg);
			break;
		case O_SPIN_NS:
			if (!parse_u64(optarg, 1, UINT32_MAX, &v))
				bad("--spin-ns", optarg);
			opt.spin_ns = (uint32_t)v;
			break;
		case O_WORK:
			if (!parse_u64(optarg, 0, 1000000, &v))
				bad("--work-us", optarg);
			opt.work_us = (uint32_t)v;
			break;
		case O_ROUNDS:
			if (!parse_u64(optarg, 10, 100000000, &v))
				bad("--rounds", optarg);
			opt.hot_rounds = (unsigned)v;
			rounds_set = true;
			break;
		case O_ONE:
			if (!parse_u64(optarg, 0, MAX_DEPTH, &v))
				bad("--one-thread-depth (0..4096)", optarg);
			opt.one_depth = (unsigned)v;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			bad("option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		bad("argument", argv[optind]);
	if (opt.quick) {
		if (!tasks_set)
			opt.tasks = 10000;
		if (!rounds_set)
			opt.hot_rounds = 2000;
	}
	opt.idle_rounds = opt.hot_rounds / 10 < 10 ? 10 : opt.hot_rounds / 10;
	opt.floor_rounds = opt.hot_rounds;
}

static const char *pf(const struct goal *g)
{
	return !g->measured ? "n/a" : g->pass ? "PASS" : "MISS";
}

static void json_usage(FILE *f, const char *name, const struct usage *u, uint64_t n)
{
	fprintf(f, "\"%s\": {\"cpu_ns\": %" PRIu64 ", \"cpu_us_per_task\": %.4f, "
		"\"migrations\": %" PRIu64 ", \"voluntary_switches\": %" PRIu64 ", "
		"\"involuntary_switches\": %" PRIu64 ", \"minor_faults\": %" PRIu64 "}", name,
		u->cpu_ns, u->cpu_ns / 1e3 / n, u->migrations, u->vcsw, u->ivcsw, u->minflt);
}

static void json_tp(FILE *f, const struct tp_result *r, bool arena)
{
	fprintf(f, "{\"tasks\": %" PRIu64 ", \"ns\": %" PRIu64 ", \"tasks_per_s\": %.1f, "
		"\"us_per_task\": %.4f, \"cpu_us_per_task\": %.4f, \"efficiency\": ",
		r->tasks, r->ns, r->tasks_per_s, r->us_per_task, r->cpu_us_per_task);
	if (r->efficiency > 0)
		fprintf(f, "%.4f, \"efficiency_vs_floor\": %.4f, ", r->efficiency, r->floor_eff);
	else
		fprintf(f, "null, \"efficiency_vs_floor\": null, ");
	fprintf(f, "\"others_share\": %.4f, \"steal_share\": %.4f, ", r->others, r->steal);
	/* prod: the producer thread, or the one thread of the one-thread shape
	 * and of the pipe pools; cons: the consumer thread (zero without). */
	json_usage(f, "producer", &r->prod, r->tasks);
	fprintf(f, ", ");
	json_usage(f, "consumer", &r->cons, r->tasks);
	fprintf(f, ", ");
	json_usage(f, "workers", &r->work, r->tasks);
	if (arena) {
		const struct arena_pool_stats *s = &r->st;

		fprintf(f, ", \"futex_calls\": %" PRIu64 ", \"futex_per_task\": %.5f, "
			"\"producer_waits\": %" PRIu64 ", \"producer_wakes\": %" PRIu64 ", "
			"\"consumer_waits\": %" PRIu64 ", \"consumer_wakes\": %" PRIu64 ", "
			"\"worker_waits\": %" PRIu64 ", \"worker_wakes\": %" PRIu64 ", "
			"\"wakes_skipped\": %" PRIu64 ", \"producer_wait_ns\": %" PRIu64 ", "
			"\"consumer_wait_ns\": %" PRIu64 ", \"worker_wait_ns\": %" PRIu64 ", "
			"\"uring\": %d, \"tasks_per_worker\": [",
			r->futex_calls, r->futex_per_task, s->producer_waits, s->producer_wakes,
			s->consumer_waits, s->consumer_wakes, s->worker_waits, s->worker_wakes,
			s->wakes_skipped, s->producer_wait_ns, s->consumer_wait_ns,
			s->worker_wait_ns, s->uring);
		for (unsigned i = 0; i < s->workers && i < 64; i++)
			fprintf(f, "%s%" PRIu64, i ? ", " : "", s->tasks_per_worker[i]);
		fprintf(f, "]");
	}
	fprintf(f, "}");
}

static void json_pct(FILE *f, const char *name, struct pct p)
{
	fprintf(f, "\"%s\": {\"p50_us\": %.3f, \"p99_us\": %.3f, \"max_us\": %.3f}",
		name, p.p50_us, p.p99_us, p.max_us);
}

static int write_json(const char *path, const struct config *cf, size_t ncf,
		      const struct lat_result *lat, size_t nlat,
		      const struct floor_result *ff, const struct floor_result *ft,
		      const struct floor_result *f1, const struct floor_result *fs,
		      const struct floor_result *fi, const struct spsc_result *sf, const struct goal *g, size_t ng,
		      double total_s)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fprintf(f, "{\n  \"bench\": \"ring-bench\",\n  \"cpus\": %ld,\n  \"quick\": %s,\n"
		"  \"tasks_base\": %" PRIu64 ",\n  \"work_us\": %u,\n  \"spin\": \"%s\",\n"
		"  \"spin_ns\": %u,\n  \"work_loop_per_us\": %.1f,\n  \"sched_counters\": %s,\n  \"items\": %u,\n  \"item_bytes\": [%u, %u],\n"
		"  \"total_s\": %.2f,\n  \"throughput\": [\n",
		sysconf(_SC_NPROCESSORS_ONLN), opt.quick ? "true" : "false", opt.tasks,
		opt.work_us, opt.spin == ARENA_SPIN_AUTO ? "auto" :
		opt.spin == ARENA_SPIN_NEVER ? "never" : "always", opt.spin_ns, loop_per_us,
		has_sched ? "true" : "false", NITEMS,
		ITEM_MIN, ITEM_MAX, total_s);
	for (size_t i = 0; i < ncf; i++) {
		fprintf(f, "    {\"kind\": \"%s\", \"threads\": %u, \"workers\": %u, "
			"\"depth\": %u, \"ideal_us_per_task\": ", kind_name[cf[i].kind],
			cf[i].threads, cf[i].workers, cf[i].depth);
		if (cf[i].kind == KIND_WORK) {
			double pu, wf = wake_floor(cf[i].workers, cf[i].depth, &pu);

			fprintf(f, "%.4f, \"floor_us_per_task\": %.4f, \"wake_floor_us_per_task\": "
				"%.4f, \"wake_floor_parent_cpu_us_per_task\": %.4f",
				ideal_us_per_task(cf[i].workers), compute_floor(cf[i].workers), wf, pu);
		} else {
			fprintf(f, "null, \"floor_us_per_task\": null, \"wake_floor_us_per_task\": null, "
				"\"wake_floor_parent_cpu_us_per_task\": null");
		}
		fprintf(f, ", \"arena\": ");
		json_tp(f, &cf[i].arena, true);
		fprintf(f, ", \"pipe\": ");
		json_tp(f, &cf[i].pipe, false);
		fprintf(f, ", \"pipe_batch\": ");
		json_tp(f, &cf[i].batch, false);
		fprintf(f, ", \"arena_over_pipe\": %.3f, \"arena_over_pipe_batch\": %.3f, "
			"\"cpu_arena_over_pipe_batch\": %.3f}%s\n",
			cf[i].arena.tasks_per_s / cf[i].pipe.tasks_per_s,
			cf[i].arena.tasks_per_s / cf[i].batch.tasks_per_s,
			cf[i].arena.cpu_us_per_task / cf[i].batch.cpu_us_per_task,
			i + 1 < ncf ? "," : "");
	}
	fprintf(f, "  ],\n  \"latency\": [\n");
	for (size_t i = 0; i < nlat; i++) {
		fprintf(f, "    {\"workers\": %u, \"hot_rounds\": %u, \"idle_rounds\": %u, "
			"\"idle_pause_us\": [%u, %u], ", lat[i].workers, lat[i].rounds,
			opt.idle_rounds, IDLE_PAUSE_MIN_NS / 1000, IDLE_PAUSE_MAX_NS / 1000);
		json_pct(f, "hot", lat[i].hot);
		fprintf(f, ", ");
		json_pct(f, "idle", lat[i].idle);
		fprintf(f, ", \"hot_futex_per_round\": %.4f, \"idle_futex_per_round\": %.4f, "
			"\"idle_worker_waits\": %" PRIu64 ", \"idle_p99_over_futex_p99\": %.3f, "
			"\"idle_p99_over_idle_floor_p99\": %.3f}%s\n", lat[i].hot_futex_per_round,
			lat[i].idle_futex_per_round, lat[i].idle_worker_waits,
			ff->p.p99_us > 0 ? lat[i].idle.p99_us / ff->p.p99_us : 0,
			fi->p.p99_us > 0 ? lat[i].idle.p99_us / fi->p.p99_us : 0,
			i + 1 < nlat ? "," : "");
	}
	fprintf(f, "  ],\n  \"floors\": {\n    \"futex_pingpong\": {\"rounds\": %u, "
		"\"pinned\": %s, ", ff->rounds, ff->pinned ? "true" : "false");
	json_pct(f, "round_trip", ff->p);
	fprintf(f, ", \"cpu_us_per_round_trip\": %.3f", ff->cpu_us_per_rt);
	fprintf(f, "},\n    \"futex_pingpong_1ms_timeout\": {\"rounds\": %u, \"pinned\": %s, ",
		ft->rounds, ft->pinned ? "true" : "false");
	json_pct(f, "round_trip", ft->p);
	fprintf(f, ", \"cpu_us_per_round_trip\": %.3f", ft->cpu_us_per_rt);
	fprintf(f, "},\n    \"futex_pingpong_one_cpu\": {\"rounds\": %u, \"pinned\": %s, ",
		f1->rounds, f1->pinned ? "true" : "false");
	json_pct(f, "round_trip", f1->p);
	fprintf(f, ", \"cpu_us_per_round_trip\": %.3f", f1->cpu_us_per_rt);
	fprintf(f, "},\n    \"futex_pingpong_idle\": {\"rounds\": %u, \"pinned\": %s, "
		"\"pause_us\": [%u, %u], ", fi->rounds, fi->pinned ? "true" : "false",
		IDLE_PAUSE_MIN_NS / 1000, IDLE_PAUSE_MAX_NS / 1000);
	json_pct(f, "round_trip", fi->p);
	fprintf(f, ", \"cpu_us_per_round_trip\": %.3f", fi->cpu_us_per_rt);
	fprintf(f, "},\n    \"syscall_ns\": %.1f", syscall_floor_ns);
	fprintf(f, ",\n    \"spin_pingpong\": {\"rounds\": %u, \"pinned\": %s, ",
		fs->rounds, fs->pinned ? "true" : "false");
	json_pct(f, "round_trip", fs->p);
	for (int t = 0; t < 2; t++)
		fprintf(f, "},\n    \"spsc_%s\": {\"depth\": 1024, \"wall_ns_per_task\": %.2f, "
			"\"parent_cpu_ns_per_task\": %.2f, \"consumer_cpu_ns_per_task\": %.2f, "
			"\"worker_cpu_ns_per_task\": %.2f", t ? "two_threads" : "one_thread",
			sf[t].wall_ns, sf[t].parent_ns, sf[t].cons_ns, sf[t].worker_ns);
	fprintf(f, "}\n  },\n  \"goals\": [\n");
	for (size_t i = 0; i < ng; i++) {
		fprintf(f, "    {\"goal\": \"%s\", \"shape\": \"%s\", \"op\": \"%s\", "
			"\"target\": %g, \"unit\": \"%s\", ", g[i].name, g[i].shape, g[i].op,
			g[i].target, g[i].unit);
		if (g[i].measured)
			fprintf(f, "\"value\": %.6g, \"result\": \"%s\"}", g[i].value, pf(&g[i]));
		else
			fprintf(f, "\"value\": null, \"result\": \"n/a\"}");
		fprintf(f, "%s\n", i + 1 < ng ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	if (fclose(f) != 0)
		return -errno;
	return 0;
}

/* Runs one row: the arena in the given shape, then both pipe pools. */
static void run_config(struct config *c, enum kind k, unsigned threads, unsigned w, unsigned d)
{
	c->kind = k;
	c->threads = threads;
	c->workers = w;
	c->depth = d;
	c->tasks = tasks_for(k, d);
	c->arena = arena_throughput(w, d, k, c->tasks, threads);
	/* Pipes are timed over fewer tasks where the arena's count is raised
	 * for its high rate. */
	uint64_t pn = c->tasks < opt.tasks ? c->tasks : opt.tasks;

	c->pipe = pipe_throughput(w, d, k, pn, false);
	c->batch = pipe_throughput(w, d, k, pn, true);
}

static void print_cpu_table(const struct config *cf, size_t ncf)
{
	printf("\nCPU time per task (us) of every process involved, over the timed run: "
	       "prod = the producer\nthread (1-thread rows and pipe pools: the one parent "
	       "thread), cons = the consumer thread,\nwrk = all workers; eff = ideal / "
	       "measured time per task, ideal = %u us / min(workers, %ld CPUs)\n",
	       opt.work_us, sysconf(_SC_NPROCESSORS_ONLN));
	printf("others = the CPUs' share other processes took meanwhile (arena run / batch "
	       "run, %%):\na row with others above a few %% was measured under load\n");
	printf("%-4s %3s %3s %5s | %6s %6s %6s %6s %5s | %6s %6s %6s %5s | %6s %6s %6s %5s | "
	       "%7s | %s\n", "kind", "thr", "wrk", "depth", "prod", "cons", "wrk", "arena", "eff",
	       "parent", "wrk", "pipe", "eff", "parent", "wrk", "batch", "eff", "others",
	       "cpu ar/batch");
	for (size_t i = 0; i < ncf; i++) {
		const struct config *c = &cf[i];
		const struct tp_result *a = &c->arena, *p = &c->pipe, *b = &c->batch;
		double n = (double)a->tasks;
		char ea[8] = "-", ep[8] = "-", eb[8] = "-";

		if (c->kind == KIND_WORK) {
			snprintf(ea, sizeof(ea), "%.3f", a->efficiency);
			snprintf(ep, sizeof(ep), "%.3f", p->efficiency);
			snprintf(eb, sizeof(eb), "%.3f", b->efficiency);
		}
		if (i && c->kind != cf[i - 1].kind)
			printf("\n");
		printf("%-4s %3u %3u %5u | %6.3f %6.3f %6.3f %6.3f %5s | %6.3f %6.3f %6.3f %5s | "
		       "%6.3f %6.3f %6.3f %5s | %3.0f/%-3.0f | %6.2fx\n", kind_name[c->kind], c->threads,
		       c->workers, c->depth, a->prod.cpu_ns / 1e3 / n, a->cons.cpu_ns / 1e3 / n,
		       a->work.cpu_ns / 1e3 / n, a->cpu_us_per_task, ea,
		       p->prod.cpu_ns / 1e3 / p->tasks, p->work.cpu_ns / 1e3 / p->tasks,
		       p->cpu_us_per_task, ep, b->prod.cpu_ns / 1e3 / b->tasks,
		       b->work.cpu_ns / 1e3 / b->tasks, b->cpu_us_per_task, eb,
		       a->others * 100, b->others * 100, a->cpu_us_per_task / b->cpu_us_per_task);
	}
	for (unsigned par = 1; par <= MAX_WORKERS; par++) {
		const struct floor_memo *f = floor_find(par, 0);

		if (f)
			printf("compute floor: the same %u us tasks in %u process%s that only compute "
			       "(no pool): %.3f us/task, eff %.3f\n", opt.work_us, par,
			       par > 1 ? "es" : "", f->us, (double)opt.work_us / par / f->us);
	}
	for (unsigned k = 0; k < nfloors; k++)
		if (floors[k].every)
			printf("wake floor: the same in %u process%s, each waking a parent asleep on a "
			       "futex after every %u of\n  its tasks (one wake-up per %u tasks: the "
			       "fewest a pool of that depth can do with a parent\n  that sleeps), the "
			       "parent doing nothing else: %.3f us/task, eff %.3f, parent CPU %.3f "
			       "us/task\n", floors[k].par, floors[k].par > 1 ? "es" : "",
			       floors[k].every, floors[k].every, floors[k].us,
			       (double)opt.work_us / floors[k].par / floors[k].us,
			       floors[k].parent_us);
}

/* The issue-18 goals over every row: the worst row's value. */
static void set_row_goals(const struct config *cf, size_t ncf, struct goal *speed,
			  struct goal *cpu, struct goal *eff1024, struct goal *eff10)
{
	double min_speed = 1e300, max_cpu = 0, min_e1024 = 1e300, min_e10 = 1e300;
	bool any1024 = false, any10 = false;

	for (size_t i = 0; i < ncf; i++) {
		const struct config *c = &cf[i];
		double sp = c->arena.tasks_per_s / c->batch.tasks_per_s;
		double cp = c->arena.cpu_us_per_task / c->batch.cpu_us_per_task;

		min_speed = sp < min_speed ? sp : min_speed;
		max_cpu = cp > max_cpu ? cp : max_cpu;
		if (c->kind != KIND_WORK || !opt.work_us)
			continue;
		if (c->depth == 1024) {
			any1024 = true;
			if (c->arena.efficiency < min_e1024)
				min_e1024 = c->arena.efficiency;
		} else if (c->depth == 10) {
			any10 = true;
			if (c->arena.efficiency < min_e10)
				min_e10 = c->arena.efficiency;
		}
	}
	set_goal(speed, ncf > 0, min_speed);
	set_goal(cpu, ncf > 0, max_cpu);
	set_goal(eff1024, any1024, min_e1024);
	set_goal(eff10, any10, min_e10);
}

int main(int argc, char **argv)
{
	struct config cf[2 * MAX_LIST * MAX_LIST + 2 * MAX_LIST];
	struct lat_result lat[MAX_LIST];
	struct floor_result ff, ft, f1, fs, fi;
	struct spsc_result sf[2];
	double batch_best_ns = 0;
	size_t ncf = 0;
	uint64_t start = now_ns();
	struct goal g[] = {
		{ .name = "bulk throughput", .shape = "2 workers, depth 1024, tiny", .unit = "tasks/s", .op = ">=", .target = 10e6 },
		{ .name = "bulk arena/pipe", .shape = "2 workers, depth 1024, tiny", .unit = "x", .op = ">=", .target = 50 },
		{ .name = "bulk futex calls", .shape = "2 workers, depth 1024, tiny", .unit = "calls/task", .op = "<", .target = 0.02 },
		{ .name = "seed time per task", .shape = "5 workers, depth 10, tiny", .unit = "us/task", .op = "<=", .target = 2 },
		{ .name = "seed futex calls", .shape = "5 workers, depth 10, tiny", .unit = "calls/task", .op = "<=", .target = 1 },
		{ .name = "seed 20us tasks", .shape = "5 workers, depth 10, work", .unit = "us/task", .op = "<=", .target = 13 },
		{ .name = "idle one-task p50", .shape = "5 workers, one task, idle", .unit = "us", .op = "<=", .target = 10 },
		{ .name = "idle one-task p99", .shape = "5 workers, one task, idle", .unit = "us", .op = "<=", .target = 50 },
		/* Issue 18: never behind a batched pipe pool. */
		{ .name = "arena/batch", .shape = "every row (the worst)", .unit = "x", .op = ">=", .target = 1.0 },
		{ .name = "CPU arena/batch", .shape = "every row (the worst)", .unit = "x", .op = "<=", .target = 1.0 },
		{ .name = "efficiency", .shape = "work rows, depth 1024 (worst)", .unit = "", .op = ">=", .target = 0.95 },
		{ .name = "efficiency", .shape = "work rows, depth 10 (worst)", .unit = "", .op = ">=", .target = 0.85 },
		{ .name = "seed arena/pipe", .shape = "5 workers, depth 10, tiny", .unit = "x", .op = ">=", .target = 5 },
		{ .name = "seed futex (today's)", .shape = "5 workers, depth 10, tiny", .unit = "calls/task", .op = "<=", .target = 0.36 },
		{ .name = "idle p99/futex p99", .shape = "5 workers, one task, idle", .unit = "x", .op = "<=", .target = 1.5 },
	};
	const size_t ng = sizeof(g) / sizeof(g[0]);

	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	calibrate_work();
	build_arena();

	printf("ring-bench: %ld CPUs, %u items of %u-%u bytes, work tasks %u us, spin %s%s\n",
	       sysconf(_SC_NPROCESSORS_ONLN), NITEMS, ITEM_MIN, ITEM_MAX, opt.work_us,
	       opt.spin == ARENA_SPIN_AUTO ? "auto" : opt.spin == ARENA_SPIN_NEVER ?
	       "never" : "always", opt.quick ? " (--quick)" : "");
	printf("thr 2: a producer and a consumer thread; thr 1: one thread submits up to depth "
	       "ahead and reaps\n(the Python module's shape); pipe: forked workers, a task and "
	       "a result pipe each, one\nwrite per task (the goal's baseline); batch: the same "
	       "pipes with batched writes/reads;\nwork = %u us of computation + copy; pipes run min(tasks, "
	       "%" PRIu64 ") tasks\n\n", opt.work_us, opt.tasks);
	printf("%-4s %3s %3s %5s %8s | %11s %8s %7s | %10s %8s %8s | %10s %8s %8s | %s\n",
	       "kind", "thr", "wrk", "depth", "tasks", "arena tsk/s", "us/task", "futex/t",
	       "pipe tsk/s", "us/task", "arena/pp", "batch t/s", "us/task", "ar/batch",
	       "goals");
	for (int k = 0; k < KIND_COUNT; k++) {
		if (k == KIND_WORK) {
			printf("\n");
			if (opt.work_us)
				for (unsigned wi = 0; wi < opt.nworkers; wi++) {
					double pu;

					compute_floor(opt.workers[wi]);
					for (unsigned di = 0; di <= opt.ndepths; di++) {
						unsigned d = di < opt.ndepths ? opt.depths[di]
									       : opt.one_depth;

						if (d)
							wake_floor(opt.workers[wi], d, &pu);
					}
				}
		}
		for (unsigned wi = 0; wi < opt.nworkers; wi++)
			for (unsigned di = 0; di <= opt.ndepths; di++) {
				unsigned w = opt.workers[wi];
				unsigned d = di < opt.ndepths ? opt.depths[di] : opt.one_depth;
				unsigned thr = di < opt.ndepths ? 2 : 1;
				struct config *c = &cf[ncf];
				char note[160] = "";

				if (!d)
					continue;
				ncf++;
				run_config(c, (enum kind)k, thr, w, d);
				double ratio = c->arena.tasks_per_s / c->pipe.tasks_per_s;
				double bratio = c->arena.tasks_per_s / c->batch.tasks_per_s;

				if (thr == 1) {
				} else if (k == KIND_TINY && w == 2 && d == 1024) {
					set_goal(&g[0], true, c->arena.tasks_per_s);
					set_goal(&g[1], true, ratio);
					set_goal(&g[2], true, c->arena.futex_per_task);
					snprintf(note, sizeof(note),
						 ">=10M/s %s, >=50x %s, <0.02 futex %s",
						 pf(&g[0]), pf(&g[1]), pf(&g[2]));
				} else if (k == KIND_TINY && w == 5 && d == 10) {
					set_goal(&g[3], true, c->arena.us_per_task);
					set_goal(&g[4], true, c->arena.futex_per_task);
					set_goal(&g[12], true, ratio);
					set_goal(&g[13], true, c->arena.futex_per_task);
					snprintf(note, sizeof(note), "<=2us %s, <=1 futex %s, >=5x %s",
						 pf(&g[3]), pf(&g[4]), pf(&g[12]));
				} else if (k == KIND_WORK && w == 5 && d == 10 &&
					   opt.work_us == 20) {
					set_goal(&g[5], true, c->arena.us_per_task);
					snprintf(note, sizeof(note), "<=13us %s", pf(&g[5]));
				}
				printf("%-4s %3u %3u %5u %8" PRIu64 " | %11.0f %8.3f %7.4f | %10.0f "
				       "%8.3f %7.2fx | %10.0f %8.3f %7.2fx | %s\n", kind_name[k],
				       thr, w, d, c->tasks, c->arena.tasks_per_s, c->arena.us_per_task,
				       c->arena.futex_per_task, c->pipe.tasks_per_s,
				       c->pipe.us_per_task, ratio, c->batch.tasks_per_s,
				       c->batch.us_per_task, bratio, note);
			}
	}
	print_cpu_table(cf, ncf);
	set_row_goals(cf, ncf, &g[8], &g[9], &g[10], &g[11]);

	printf("\none task at a time (submit1, reap 1, release), depth 10; hot: back to "
	       "back, idle: after a %u-%u us pause\n", IDLE_PAUSE_MIN_NS / 1000,
	       IDLE_PAUSE_MAX_NS / 1000);
	printf("%-4s %7s | %9s %9s %9s | %9s %9s %9s | %s\n", "wrk", "rounds", "hot p50",
	       "hot p99", "futex/rt", "idle p50", "idle p99", "futex/rt", "goals");
	for (unsigned wi = 0; wi < opt.nworkers; wi++) {
		char note[120] = "";

		lat[wi] = arena_latency(opt.workers[wi]);
		if (opt.workers[wi] == 5) {
			set_goal(&g[6], true, lat[wi].idle.p50_us);
			set_goal(&g[7], true, lat[wi].idle.p99_us);
			snprintf(note, sizeof(note), "idle p50<=10us %s, p99<=50us %s",
				 pf(&g[6]), pf(&g[7]));
		}
		printf("%-4u %7u | %7.2fus %7.2fus %9.3f | %7.2fus %7.2fus %9.3f | %s\n",
		       lat[wi].workers, lat[wi].rounds, lat[wi].hot.p50_us, lat[wi].hot.p99_us,
		       lat[wi].hot_futex_per_round, lat[wi].idle.p50_us, lat[wi].idle.p99_us,
		       lat[wi].idle_futex_per_round, note);
	}

	ff = pingpong(true, false, opt.floor_rounds, 0, false);
	ft = pingpong(true, false, opt.floor_rounds, 1000000, false);
	f1 = pingpong(true, true, opt.floor_rounds, 0, false);
	fs = pingpong(false, false, opt.floor_rounds, 0, false);
	fi = pingpong(true, false, opt.idle_rounds, 0, true);
	syscall_floor_ns = syscall_ns();
	printf("\nfloors, two processes%s, %u round trips (cpu: both processes' CPU time a\n"
	       "round trip, two sleeps and two wake-ups):\n",
	       ff.pinned ? " pinned to two CPUs" : "", opt.floor_rounds);
	printf("  futex ping-pong (shared mapping, FUTEX_WAIT/WAKE): p50 %8.2f us  p99 %8.2f us"
	       "  cpu %6.2f us\n", ff.p.p50_us, ff.p.p99_us, ff.cpu_us_per_rt);
	printf("  the same, each FUTEX_WAIT with a 1 ms timeout:    p50 %8.2f us  p99 %8.2f us"
	       "  cpu %6.2f us\n", ft.p.p50_us, ft.p.p99_us, ft.cpu_us_per_rt);
	if (f1.pinned)
		printf("  futex ping-pong, both on one CPU (no IPI):        p50 %8.2f us  p99 %8.2f us"
		       "  cpu %6.2f us\n", f1.p.p50_us, f1.p.p99_us, f1.cpu_us_per_rt);
	printf("  spin ping-pong (one shared cache line):           p50 %8.2f us  p99 %8.2f us\n",
	       fs.p.p50_us, fs.p.p99_us);
	printf("  futex ping-pong after the idle rounds' %u-%u us pause, not pinned, %u round\n"
	       "  trips (the idle one-task rounds' floor):          p50 %8.2f us  p99 %8.2f us"
	       "  cpu %6.2f us\n", IDLE_PAUSE_MIN_NS / 1000, IDLE_PAUSE_MAX_NS / 1000,
	       fi.rounds, fi.p.p50_us, fi.p.p99_us, fi.cpu_us_per_rt);
	printf("  a system call (getppid, which does nothing): %.0f ns; every sleep, wake-up and\n"
	       "  pipe write of every pool above is at least one\n", syscall_floor_ns);
	for (unsigned wi = 0; wi < opt.nworkers; wi++)
		if (fi.p.p99_us > 0 && ff.p.p99_us > 0)
			printf("    one task after that pause, %u worker%s: p99 %.2fx this floor's, "
			       "%.2fx the back-to-back one's\n", lat[wi].workers,
			       lat[wi].workers > 1 ? "s" : "", lat[wi].idle.p99_us / fi.p.p99_us,
			       lat[wi].idle.p99_us / ff.p.p99_us);
	spsc_floors(sf);
	for (size_t i = 0; i < ncf; i++)
		if (cf[i].kind == KIND_TINY && cf[i].depth == 1024 &&
		    (!batch_best_ns || cf[i].batch.us_per_task * 1e3 < batch_best_ns))
			batch_best_ns = cf[i].batch.us_per_task * 1e3;
	printf("  a tiny task through shared memory, no protocol, one worker spinning, depth "
	       "1024\n  (spsc.h: the tiny depth-1024 rows' floor; ns a task, wall and CPU):\n"
	       "    one parent thread:                       wall %6.1f  parent %6.1f  worker %6.1f\n"
	       "    a producer and a consumer thread:        wall %6.1f  producer %5.1f  consumer "
	       "%5.1f  worker %5.1f\n", sf[0].wall_ns, sf[0].parent_ns, sf[0].worker_ns,
	       sf[1].wall_ns, sf[1].parent_ns, sf[1].cons_ns, sf[1].worker_ns);
	if (batch_best_ns > 0)
		printf("    the batched pipe pool, tiny depth-1024 rows, best: %6.1f (floor / it: one "
		       "thread %.2fx, two %.2fx)\n", batch_best_ns, sf[0].wall_ns / batch_best_ns,
		       sf[1].wall_ns / batch_best_ns);

	for (unsigned wi = 0; wi < opt.nworkers; wi++)
		if (opt.workers[wi] == 5 && ff.p.p99_us > 0)
			set_goal(&g[14], true, lat[wi].idle.p99_us / ff.p.p99_us);

	printf("\ngoals (a benchmark: a MISS is reported, not an exit code):\n");
	for (size_t i = 0; i < ng; i++) {
		if (g[i].measured)
			printf("  %-4s %-20s %-28s %s %g %-10s measured %.4g\n", pf(&g[i]),
			       g[i].name, g[i].shape, g[i].op, g[i].target, g[i].unit, g[i].value);
		else
			printf("  %-4s %-20s %-28s %s %g %-10s not measured in this run\n",
			       pf(&g[i]), g[i].name, g[i].shape, g[i].op, g[i].target, g[i].unit);
	}
	unsigned loaded = 0;

	for (size_t i = 0; i < ncf; i++)
		if (cf[i].arena.others > 0.1 || cf[i].batch.others > 0.1)
			loaded++;
	if (loaded)
		printf("  %u of %zu throughput rows ran while other processes took over 10%% of the "
		       "CPUs\n  (column others): their wall times, ratios and efficiencies are the "
		       "machine's, not the pool's\n", loaded, ncf);
	double total_s = (now_ns() - start) / 1e9;

	printf("total %.1f s\n", total_s);
	if (opt.json) {
		int r = write_json(opt.json, cf, ncf, lat, opt.nworkers, &ff, &ft, &f1, &fs, &fi,
				   sf, g, ng, total_s);

		if (r < 0)
			die("writing %s: %s", opt.json, strerror(-r));
	}
	arena_close(g_arena);
	return 0;
}
