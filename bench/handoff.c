/* SPDX-License-Identifier: MIT */
/*
 * handoff: what it costs a parent to be woken by a worker while two workers
 * keep both CPUs busy, through a futex and through a pipe.
 *
 * The shape of the pool at depth 10 with 20 us tasks on 2 CPUs: worker A
 * computes 100 us (a batch of 5 tasks), wakes the parent and spins until the
 * parent has "refilled" it; the parent wakes, works 1.5 us (harvest and
 * refill) and sleeps again; worker B computes all along.  Printed per run:
 * the parent's CPU time per cycle, A's CPU time per cycle (100 us of it is
 * work) and the share of the run B got.
 *
 * A futex wake-up says nothing of what the waker does next, so the kernel
 * puts the parent back on the CPU it last ran on.  When that is B's CPU the
 * parent preempts B every cycle, through an inter-processor interrupt, and
 * the run stays in that state.  A pipe write is a "sync" wake-up (the waker
 * is expected to wait), which puts the parent on the waker's CPU: A's, where
 * it only displaces A's spin.  Measured on the 2-vCPU VM (`handoff 3000 6`):
 * each futex run lands in one of two states, 16.5-16.9 us of parent CPU a
 * cycle with B at 0.84-0.85 of the run (5 runs of 6), or 4.9 us with B at
 * 0.94 (1 run); every pipe run in the cheap one, 4.2-4.5 us with B at
 * 0.94-0.95.  The arena's reaper pays 11-16 us a sleep in the same shape
 * (bench/parent-cost 2 10 30000 20): its workers wake it with FUTEX_WAKE.
 *
 * usage: handoff [CYCLES [RUNS]]   (3000 5)
 * Exit: 0, or 1 when a process cannot be started.
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cpu_relax.h"

#define WORK_NS 100000.0      /* A's batch: 5 tasks of 20 us */
#define REFILL_NS 1500.0      /* the parent's harvest and refill */

enum mode { FUTEX, PIPE };

struct shared {
	_Atomic uint32_t word;    /* futex mode: bumped by A, waited on by the parent */
	_Atomic uint32_t go;      /* cycles refilled: A spins until it moves */
	_Atomic uint32_t stop;    /* B stops */
	_Atomic uint64_t b_units; /* B's progress: microseconds computed */
	double a_cpu_ns;
};

static double clock_ns(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}


static void compute(double ns)
{
	double end = clock_ns(CLOCK_MONOTONIC) + ns;

	while (clock_ns(CLOCK_MONOTONIC) < end)
		;
}

static pid_t start(void (*fn)(struct shared *, enum mode, int, unsigned), struct shared *s,
		   enum mode m, int wfd, unsigned cycles)
{
	pid_t pid = fork();

	if (pid == 0) {
		fn(s, m, wfd, cycles);
		_exit(0);
	}
	return pid;
}

static void worker_b(struct shared *s, enum mode m, int wfd, unsigned cycles)
{
	(void)m, (void)wfd, (void)cycles;
	while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
		compute(1000);
		atomic_fetch_add_explicit(&s->b_units, 1, memory_order_relaxed);
	}
}

static void worker_a(struct shared *s, enum mode m, int wfd, unsigned cycles)
{
	double c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	char byte = 1;

	for (uint32_t k = 1; k <= cycles; k++) {
		compute(WORK_NS);
		if (m == FUTEX) {
			atomic_fetch_add_explicit(&s->word, 1, memory_order_release);
			syscall(SYS_futex, &s->word, FUTEX_WAKE, 1, NULL, NULL, 0);
		} else if (write(wfd, &byte, 1) != 1) {
			_exit(1);
		}
		while (atomic_load_explicit(&s->go, memory_order_acquire) != k)
			cpu_relax();
	}
	s->a_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
}

/* One run; returns the parent's CPU time per cycle, in us. */
static double run(enum mode m, unsigned cycles)
{
	struct shared *s = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				-1, 0);
	double c0, t0, cpu, wall;
	uint32_t seen = 0;
	int p[2];
	pid_t a, b;

	if (s == MAP_FAILED || pipe(p) < 0) {
		perror("handoff");
		exit(1);
	}
	b = start(worker_b, s, m, p[1], cycles);
	a = start(worker_a, s, m, p[1], cycles);
	if (a < 0 || b < 0) {
		perror("handoff: fork");
		exit(1);
	}
	c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	t0 = clock_ns(CLOCK_MONOTONIC);
	for (uint32_t k = 1; k <= cycles; k++) {
		if (m == FUTEX) {
			uint32_t x;

			while ((x = atomic_load_explicit(&s->word, memory_order_acquire)) == seen)
				syscall(SYS_futex, &s->word, FUTEX_WAIT, x, NULL, NULL, 0);
			seen = x;
		} else {
			char byte;

			if (read(p[0], &byte, 1) != 1)
				break;
		}
		compute(REFILL_NS);
		atomic_store_explicit(&s->go, k, memory_order_release);
	}
	cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
	wall = clock_ns(CLOCK_MONOTONIC) - t0;
	waitpid(a, NULL, 0);
	atomic_store(&s->stop, 1);
	waitpid(b, NULL, 0);
	printf("%-5s  parent cpu %5.1f us/cycle  A cpu %6.1f us/cycle (%.0f of work)  "
	       "B got %.3f of the run  cycle %6.1f us\n", m == FUTEX ? "futex" : "pipe",
	       cpu / cycles / 1e3, s->a_cpu_ns / cycles / 1e3, WORK_NS / 1e3,
	       atomic_load(&s->b_units) * 1e3 / wall, wall / cycles / 1e3);
	close(p[0]);
	close(p[1]);
	munmap(s, 4096);
	return cpu / cycles / 1e3;
}

int main(int argc, char **argv)
{
	unsigned cycles = argc > 1 ? (unsigned)atoi(argv[1]) : 3000;
	unsigned runs = argc > 2 ? (unsigned)atoi(argv[2]) : 5;

	if (!cycles || !runs) {
		fprintf(stderr, "usage: handoff [CYCLES [RUNS]]\n");
		return 1;
	}
	printf("handoff: %u cycles a run, %u runs of each; %ld CPUs\n", cycles, runs,
	       sysconf(_SC_NPROCESSORS_ONLN));
	fflush(stdout);
	for (unsigned r = 0; r < runs; r++) {
		run(FUTEX, cycles);
		run(PIPE, cycles);
		fflush(stdout);
	}
	return 0;
}
