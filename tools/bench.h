/* SPDX-License-Identifier: MIT */
/*
 * arena-bench: the seed's experiment (a pool of workers fetching items of a
 * large read-only sequence) run with every way of sharing the sequence, side
 * by side.  This header is the contract between the files of the tool:
 *   arena-bench.c   options, running the modes, exit status
 *   bench_common.c  workload, checksums, clocks, stats, counted I/O, memory
 *   bench_fork.c    forked workers + producer/consumer over pipes, shared by
 *                   the copy, proxy and pipe modes
 *   bench_copy.c / bench_proxy.c / bench_pipe.c   what a worker does per task
 *   bench_arena.c   the same experiment through libarena's pool
 *   bench_report.c  table, JSON, CSV, SVG
 * Helpers return 0 or a negative errno and never exit.
 */
#ifndef ARENA_BENCH_H
#define ARENA_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/uio.h>

#define BENCH_MAX_WORKERS 64
#define BENCH_MAX_REPS 100
/* A run that sees no completion for this long is a hang, and fails. */
#define BENCH_STALL_NS (30ull * 1000000000ull)

enum bench_mode { MODE_COPY, MODE_PROXY, MODE_PIPE, MODE_ARENA, MODE_COUNT };

struct bench_opts {
	uint64_t items;       /* items in the sequence */
	uint64_t item_size;   /* bytes of each record's string */
	uint64_t tasks;       /* tasks for proxy, pipe, arena */
	uint64_t copy_tasks;  /* tasks for copy (each ships the whole sequence) */
	unsigned workers;
	unsigned depth;       /* tasks in flight: submitted, not yet received */
	unsigned reps;
	unsigned modes;       /* bit (1 << enum bench_mode) */
	unsigned kill_ms;     /* arena: SIGKILL a worker every kill_ms (0: never) */
	const char *json, *csv, *svg;
};

/*
 * The sequence: items[i] = ('test_string', [1, 3, 4]) encoded as
 *   u32 strlen, strlen bytes, u32 n, n x int64   (little endian, packed)
 * stored back to back in blob, item i at off[i] .. off[i + 1].
 * blob and off are page-aligned mappings so that fork inheritance can be
 * switched per mode (workload_set_inherit).
 */
struct workload {
	uint64_t count;
	uint8_t *blob;
	size_t blob_len, blob_map;
	uint64_t *off;        /* count + 1 entries */
	size_t off_map;
	uint64_t *hash;       /* FNV-1a 64 of each item */
	size_t hash_map;
	size_t max_item;      /* largest record */
};

int workload_build(struct workload *wl, uint64_t items, uint64_t item_size);
void workload_free(struct workload *wl);
/* Whether forked children get the sequence (copy-on-write) at all. */
int workload_set_inherit(struct workload *wl, bool inherit);
/* Sum over tasks t < ntasks of hash[t % count]: what a correct run returns. */
uint64_t workload_expected(const struct workload *wl, uint64_t ntasks);
/* Parses a serialized sequence (u64 count, records) into an offset table;
 * -EBADMSG when a record runs past the end. *off is malloc'ed. */
int sequence_parse(const uint8_t *buf, size_t len, uint64_t *count, uint64_t **off);

uint64_t fnv1a64(const void *data, size_t len);
uint64_t now_ns(void);

/* Page-aligned anonymous memory, optionally left out of forked children. */
void *big_alloc(size_t len, size_t *mapped, bool dontfork);
void big_free(void *p, size_t mapped);

/* System call counters in shared memory, one cache line per role, so the
 * workers' and the server's counts reach the parent. */
struct sys_counters {
	_Alignas(64) _Atomic uint64_t producer;
	_Alignas(64) _Atomic uint64_t consumer;
	_Alignas(64) _Atomic uint64_t worker;
	_Alignas(64) _Atomic uint64_t server;
};
struct sys_counters *counters_map(void);
void counters_unmap(struct sys_counters *c);
static inline void count_call(_Atomic uint64_t *c)
{
	/* Relaxed: a tally read after every process has been reaped. */
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* Counted I/O: every read/write/poll call adds one to *ctr (EINTR retries
 * included: they are calls too).  Return 0 or -errno; -EPIPE on EOF. */
int io_write_all(int fd, const struct iovec *iov, int iovcnt, _Atomic uint64_t *ctr);

/* A growable read buffer over a stream fd: message framing for pipes and
 * sockets with as few reads as the kernel allows. */
struct rbuf {
	uint8_t *buf;
	size_t cap, head, tail;
};
int rbuf_init(struct rbuf *r, size_t cap);
void rbuf_free(struct rbuf *r);
static inline size_t rbuf_avail(const struct rbuf *r) { return r->tail - r->head; }
static inline const uint8_t *rbuf_data(const struct rbuf *r) { return r->buf + r->head; }
static inline void rbuf_consume(struct rbuf *r, size_t n) { r->head += n; }
/* Room for a message of n bytes starting at head. */
int rbuf_reserve(struct rbuf *r, size_t n);
/* One read(); returns bytes read, 0 at EOF, or -errno. */
ssize_t rbuf_fill(struct rbuf *r, int fd, _Atomic uint64_t *ctr);
/* Blocks until n bytes are buffered: 0, 1 at a clean EOF (nothing
 * buffered), -EPIPE at EOF mid-message, or -errno. */
int rbuf_need(struct rbuf *r, int fd, size_t n, _Atomic uint64_t *ctr);

/* Memory of a live process, in KiB. */
struct proc_mem {
	uint64_t hwm_kb;  /* VmHWM: peak resident set */
	uint64_t rss_kb;  /* Rss now */
	uint64_t pss_kb;  /* Pss: shared pages divided among their users */
};
int proc_mem_read(pid_t pid, struct proc_mem *m);
/* Sum of Pss (KiB) over the mappings of pid that start at one of the n
 * addresses in starts[], or whose path contains name (when not NULL):
 * what the process pays for the sequence itself. */
int proc_mapping_pss(pid_t pid, const uintptr_t *starts, unsigned n, const char *name,
		     uint64_t *kb);

/* Waits for a child; 0 when it exited with status 0, else -ECHILD. */
int child_reap(pid_t pid, const char *what, char *err, size_t errlen);

/* Bounded in-flight count shared by the producer and the consumer: the
 * seed's Queue(10).  Waits and wakes are counted like the pool's futexes. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned inflight, depth;
	bool producer_waiting, aborted;
	uint64_t waits, wakes;
};
int gate_init(struct gate *g, unsigned depth);
void gate_destroy(struct gate *g);
/* Returns 0, or -ECANCELED once gate_abort() was called. */
int gate_acquire(struct gate *g);
void gate_release(struct gate *g);
void gate_abort(struct gate *g);

/* Progress on stderr while a mode runs (only when stderr is a terminal). */
struct progress {
	bool on;
	const char *mode;
	unsigned rep, reps;
	uint64_t total, last_ns, start_ns;
};
void progress_start(struct progress *pg, const char *mode, unsigned rep,
		    unsigned reps, uint64_t total);
void progress_tick(struct progress *pg, uint64_t done);
void progress_end(struct progress *pg);

/* What one run of one mode measured. */
#define SEQ_PSS_NONE UINT64_MAX

struct mode_result {
	enum bench_mode mode;
	bool ran, ok;
	char err[256];
	uint64_t tasks;
	uint64_t setup_ns;           /* workers/server/arena before the first task */
	uint64_t total_ns;           /* first submit to last result received */
	double mean_ns;              /* per-task round trip */
	uint64_t p50_ns, p99_ns, max_ns;
	uint64_t checksum, expected;
	/* system calls (see --help for what is counted) */
	uint64_t sys_producer, sys_consumer, sys_worker, sys_server;
	const char *sys_what;
	/* memory at the end of the mode, before workers exit */
	unsigned nworkers;
	uint64_t tasks_per_worker[BENCH_MAX_WORKERS];
	uint64_t crashes, tasks_rerun;   /* arena: workers lost and tasks run again */
	uint64_t kills;                  /* arena: SIGKILLs sent (--kill-ms) */
	unsigned mem_read;               /* arena: workers whose memory was read (the
					    others were dead at that moment) */
	uint64_t worker_hwm_kb;      /* largest worker peak RSS */
	uint64_t worker_pss_kb;      /* mean worker PSS */
	uint64_t helpers_pss_kb;     /* all workers + server PSS */
	uint64_t seq_pss_kb;         /* mean worker PSS of the sequence's own
					mappings; SEQ_PSS_NONE: not one mapping */
	/* every repetition's total, for the record */
	unsigned reps;
	uint64_t rep_total_ns[BENCH_MAX_REPS];
};

/* Everything a mode needs for one run. */
struct bench_run {
	const struct bench_opts *opt;
	struct workload *wl;
	uint64_t ntasks;
	uint64_t *submit_ns, *done_ns;  /* per task */
	struct progress pg;
};

/* Latency stats from submit_ns/done_ns; checksum verdict into res. */
int run_finish(struct bench_run *run, struct mode_result *res);

const char *mode_name(enum bench_mode m);

/* Modes: fill res, return 0, or -errno with res->err set. */
int bench_fork_mode(struct bench_run *run, enum bench_mode m, struct mode_result *res);
int bench_arena(struct bench_run *run, struct mode_result *res);

/* Forked-worker modes: what one worker does with one task. */
struct worker_ctx {
	const struct bench_opts *opt;
	struct workload *wl;        /* usable only when inherited (pipe mode) */
	int server_fd;              /* proxy: connection to the server */
	struct rbuf sbuf;           /* proxy: replies */
	struct sys_counters *ctr;
	uint64_t *scratch_off;      /* copy: table of the last sequence parsed */
};
struct fork_mode {
	enum bench_mode mode;
	bool ship_sequence;   /* every task carries the serialized sequence */
	bool inherit_sequence;/* workers keep the parent's sequence by fork */
	bool server;          /* a server process holds the sequence */
	/* Points item and len at item `index` (payload: the task's shipped bytes). */
	int (*get)(struct worker_ctx *w, uint64_t index, const uint8_t *payload,
		   size_t plen, const void **item, size_t *len);
};
extern const struct fork_mode bench_copy_mode, bench_proxy_mode, bench_pipe_mode;

/* Proxy server: forked once per run, one connection per worker. */
int proxy_server_start(struct workload *wl, unsigned nconn, int *conn_fds,
		       struct sys_counters *ctr, pid_t *pid);

/* Reports. */
struct bench_report {
	const struct bench_opts *opt;
	const struct workload *wl;
	struct mode_result res[MODE_COUNT];
};
void report_table(FILE *f, const struct bench_report *r);
int report_json(const char *path, const struct bench_report *r);
int report_csv(const char *path, const struct bench_report *r);
int report_svg(const char *path, const struct bench_report *r);
/* Per-task mean of a mode over another's (0 when either did not run ok). */
double report_speedup(const struct bench_report *r, enum bench_mode m,
		      enum bench_mode base);

#endif
