/* SPDX-License-Identifier: MIT */
/*
 * The channel: a memfd shared by the parent and its workers, holding one
 * single-producer/single-consumer SQ/CQ pair, one record and one result area
 * per worker.  This layout is an ABI between processes; fixed-width fields,
 * explicit padding, no pointers (offsets from the channel's start).
 *
 * Who writes what, and what a reader concludes if the writer died mid-way.
 * The parent never reads back a word only it writes (it keeps private
 * copies: its record of every task in flight, pool_internal.h); it reads
 * worker-written words once, into locals, and checks them against that
 * record.  A worker that writes garbage makes the pool fail (-EBADMSG), it
 * cannot make the parent read or write outside the mapping, deliver a task
 * twice or deliver anything but the caller's own user_data.
 *
 *   chan_hdr          parent, at creation only; read-only afterwards.
 *   chan_ctl.stop     parent (release); workers read.  0 run, 1 drain, 2 cancel.
 *   chan_cq_evc.seq   workers bump it (release) to wake the consumer; a dead
 *                     worker can leave it anywhere: any value is fine.
 *   chan_cq_evc.woken workers (exchange): the generation of the consumer's
 *                     sleep on the wake pipe that a waker last claimed,
 *                     before its wake-up calls; a worker that finds there
 *                     the generation it would wake skips it.  Garbage can
 *                     make workers skip waking the consumer, as garbage in
 *                     cq_waiters.ann can (below): the consumer then waits
 *                     for its own look.
 *   chan_cq_waiters   parent consumer; workers read.  ann: the reapers'
 *                     announcements (evc.h); the parent keeps its own copy
 *                     and stores it whole when a reaper announces and when
 *                     it is done, so a worker's garbage lasts only until the
 *                     next store.  cpu: a plain store of the CPU the last
 *                     reaper went to sleep on (a hint: a worker that woke
 *                     it from that CPU spins politely, or leaves the CPU
 *                     to it, at most once a millisecond).  It can
 *                     make workers skip waking the consumer meanwhile (the
 *                     consumer then waits for its timeout: no worse than a
 *                     worker that withholds a completion).
 *   chan_spin.spinners everyone (RMW).  A worker killed while spinning
 *                     leaves it one too high; the parent resets it to 0 when
 *                     a worker that was not asleep dies, and a decrement
 *                     never goes below 0 (spinning is only a hint).
 *   w->prod           parent producer: sq_tail (release: SQ slots before it
 *                     are written) and wake_seq.  Worker reads.
 *   w->cons           parent consumer: cq_head (CQ slots before it may be
 *                     reused), res_head (result bytes before it are free),
 *                     res_start for a replacement worker.  Written only
 *                     while no worker runs, or released.  The retry slot is
 *                     no longer used (retry_valid stays 0): a replacement
 *                     finds the task in hand first in its SQ, rewritten from
 *                     the parent's record.
 *   w->hot            the worker: sq_head, cq_tail (release: CQEs before it
 *                     are complete), the task in hand (inhand_*) and
 *                     task_start_ns (when the task in hand started, 0 when
 *                     none or while it waits for result space; read for
 *                     hang deadlines).  Written in the order: inhand_seq
 *                     (and _pos), inhand_valid = 1, sq_head; result
 *                     bytes, CQE, cq_tail,
 *                     inhand_valid = 0.  So after a death the parent decides
 *                     without guessing: a task in hand whose CQE is not among
 *                     the published ones is run again; one whose CQE was
 *                     published is not.  The parent takes the task itself
 *                     from its record (the oldest in flight on that worker);
 *                     inhand_seq only says whether the worker had taken it
 *                     (for the attempt count).  Before a replacement starts, the
 *                     parent rewrites the SQ slots still in flight, sq_tail,
 *                     sq_head, cq_tail, cq_head, inhand_valid and
 *                     task_start_ns from its own record.
 *   w->hot.load       the worker, every 10 ms while it runs tasks: whether
 *   w->hot.look_ms    they block (CHAN_LOAD_*), and when it looked.  A hint
 *                     for dispatch only: garbage counts as blocking, which
 *                     keeps every worker fed (as before the hint), or as
 *                     CPU-bound, which feeds only as many awake workers as
 *                     there are CPUs.  A look older than 30 ms counts as
 *                     blocking: the worker is inside one long task, which
 *                     may sleep.  The parent resets load for a replacement.
 *   w->rec            the worker: statistics and state (informational).
 *   w->slow           the worker, only when it goes to sleep: its
 *                     announcements (evc.h) for tasks (wake_ann, the producer
 *                     reads it) and for result space (space_ann, the consumer
 *                     reads it on every release).  A line of its own, quiet
 *                     while the worker is busy, so those reads hit the cache.
 *                     Garbage only costs (or skips) this worker's wakes.
 *   SQ slots          parent; the worker copies a slot out before it moves
 *                     sq_head past it (release; the parent loads sq_head with
 *                     acquire before it overwrites a slot).  Never read back
 *                     by the parent.
 *   CQ slots          the worker; the parent loads each field once (seq,
 *                     status, flags, res_off, res_len): seq must be the
 *                     oldest task in flight on that worker; what is
 *                     delivered besides comes from the parent's record.
 *                     32 bytes, two to a cache line: every byte a task
 *                     moves between two CPUs costs (the parent's CPU a
 *                     task fell by a fifth from the 48 bytes that also
 *                     carried user_data and index, bench/parent-cost).
 *   result area       the worker writes results; the parent validates each
 *                     completion's offset and length against its own account
 *                     of the area before turning it into a pointer.  It ends
 *                     on a page, followed by a PROT_NONE guard page in every
 *                     process's mapping.
 *
 * The channel memfd is sealed against SHRINK, GROW and SEAL at creation; a
 * received channel fd without SHRINK and GROW is refused (-EPERM).
 */
#ifndef ARENA_CHANNEL_H
#define ARENA_CHANNEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sys.h"

#define CACHELINE 64
#define CHAN_MAGIC 0x4e414843414e4552ull   /* "RENACHAN" little-endian */
#define CHAN_VERSION 7u   /* 3: page-aligned worker blocks, guard pages;
			     4: exec'd workers wake the reapers through the
			     wake pipe (ARENA_WORKER's third field), not the futex;
			     5: 32-byte CQEs (no user_data, no index);
			     6: an SQE is a run of tasks (count);
			     7: the wakers share the generation woken
			     (chan_evc_seq.woken) */
#define CHAN_MAX_WORKERS 64u
#define CHAN_RUN_MAX 64u     /* the most tasks in one SQ entry (chan_sqe.count) */
#define CHAN_STOP_DRAIN 1u
#define CHAN_STOP_CANCEL 2u

/* chan_hot.load: what a worker's last look found its tasks to do with
 * their time (worker.c look_load, submit.c pick).  Anything else is
 * another process's scribbling, taken as CHAN_LOAD_BLOCKS. */
#define CHAN_LOAD_UNKNOWN 0u  /* not looked yet, or cannot look */
#define CHAN_LOAD_CPU 1u      /* they never slept: on a CPU or waiting for one */
#define CHAN_LOAD_BLOCKS 2u   /* they slept (I/O, a lock, a timer) */
#define CHAN_LOOK_MS 10u      /* how often a worker running tasks looks */
#define CHAN_LOOK_STALE_MS 30u /* a look older than this is not believed */

/* Worker exit codes the parent tells apart from crashes. */
#define CHAN_EXIT_OK 0
#define CHAN_EXIT_CORRUPT 76    /* the worker found the channel corrupt */
#define CHAN_EXIT_ORPHAN 75     /* the parent died */

typedef _Atomic uint32_t a32;
typedef _Atomic uint64_t a64;
_Static_assert(sizeof(a32) == 4 && sizeof(a64) == 8, "atomics are plain words");

/*
 * A run of `count` tasks (at least 1): task k is item index + k with
 * user_data + k and seq + k, all with op.  The worker runs them in order,
 * each taken in hand and completed (a CQE) as a task of its own; the parent
 * keeps its record of the run's first task not yet completed (reap.c
 * advances it), so after a death the task in hand is that record's first,
 * as for a single task.
 */
struct chan_sqe {
	uint64_t index;
	uint64_t user_data;
	uint64_t seq;        /* pool-wide submission sequence */
	uint32_t op;
	uint16_t attempts;   /* workers the first task already killed (the
			        others have run nowhere yet) */
	uint16_t count;      /* tasks in the run, >= 1 */
};
_Static_assert(sizeof(struct chan_sqe) == 32, "sqe layout");

/* Makes *s its run's next task: index, user_data and seq one up, no
 * attempts (that task has run nowhere yet).  count is the caller's: the
 * worker walks its copy of an entry, the parent shortens its record. */
static inline void chan_sqe_next(struct chan_sqe *s)
{
	s->index++;
	s->user_data++;
	s->seq++;
	s->attempts = 0;
}

#define CQE_F_ARENA 1u    /* res_off is an offset into the arena's data */

struct chan_cqe {
	uint64_t seq;        /* names the task (the parent has the rest) */
	uint64_t res_off;    /* in the worker's result area, or the arena data */
	uint64_t res_len;
	int32_t status;
	uint32_t flags;      /* CQE_F_* */
};
_Static_assert(sizeof(struct chan_cqe) == 32, "cqe layout");

struct chan_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;
	uint32_t flags;
	uint32_t workers;
	uint32_t sq_depth;       /* power of two */
	uint32_t cq_depth;       /* power of two */
	uint64_t worker_off;     /* first worker block */
	uint64_t worker_stride;
	uint64_t sq_off;         /* within a worker block */
	uint64_t cq_off;
	uint64_t res_off;
	uint64_t res_bytes;      /* result area per worker, multiple of 64 */
	uint64_t size;           /* whole channel */
	uint64_t arena_size;     /* size of the arena this channel serves */
	uint32_t parent_pid;
	uint32_t index_base;     /* first ring index */
	uint64_t reserved[3];
};
_Static_assert(sizeof(struct chan_hdr) == 128, "channel header layout");

struct chan_ctl {            /* parent */
	a32 stop;
	uint32_t spin_ns;        /* worker spin budget */
	uint32_t spin_policy;
	uint32_t ncpu;
	uint32_t task_clock;     /* 1: stamp every task's start (hang deadlines) */
	uint32_t wrap_early;     /* 1: results may restart at the area's start
				  * early (worker.c wrap_early); 0, as in the
				  * padding of older parents: they go round */
	uint8_t pad[CACHELINE - 24];
};

struct chan_evc_seq {        /* bumped by wakers */
	a32 seq;
	uint32_t _pad0;
	a64 woken;               /* the announcement generation a waker last
				  * claimed, before its wake-up calls (evc.h
				  * evc_wake_fd_shared); 0 at creation, which
				  * no announcement has */
	uint8_t pad[CACHELINE - 16];
};

_Static_assert(sizeof(struct chan_evc_seq) == CACHELINE, "waker line");
_Static_assert(offsetof(struct chan_evc_seq, woken) % 8 == 0, "woken alignment");

struct chan_evc_waiters {    /* written by the one sleeper side */
	a64 ann;                 /* evc.h: sleepers and generation */
	a32 cpu;                 /* CPU the last reaper to sleep ran on (a hint) */
	uint8_t pad[CACHELINE - 12];
};

struct chan_spin {           /* everyone */
	a32 spinners;
	uint8_t pad[CACHELINE - 4];
};

struct chan_global {
	struct chan_hdr hdr;             /* 2 lines */
	struct chan_ctl ctl;
	struct chan_evc_seq cq_seq;
	struct chan_evc_waiters cq_waiters;
	struct chan_spin spin;
	uint8_t pad[2 * CACHELINE];
};
_Static_assert(sizeof(struct chan_global) == 8 * CACHELINE, "channel globals");
_Static_assert(offsetof(struct chan_global, ctl) == 2 * CACHELINE, "ctl line");
_Static_assert(offsetof(struct chan_global, cq_waiters) % CACHELINE == 0, "waiters line");

struct chan_prod {           /* parent producer */
	a32 sq_tail;
	a32 wake_seq;
	uint8_t pad[CACHELINE - 8];
};

struct chan_cons {           /* parent consumer (and supervisor) */
	a32 cq_head;
	a32 retry_valid;         /* 1: run `retry` before the SQ */
	a64 res_head;            /* result bytes before this are free */
	uint64_t res_start;      /* allocation start for a (re)started worker */
	uint8_t pad0[8];
	struct chan_sqe retry;
	uint8_t pad[2 * CACHELINE - 64];
};

struct chan_hot {            /* the worker, per task */
	a32 sq_head;
	a32 cq_tail;
	uint32_t pad0;
	a32 inhand_valid;
	uint32_t inhand_pos;     /* SQ position of the task in hand */
	uint32_t inhand_retry;   /* unused, 0 (the retry slot is no longer used;
				  * nobody reads it) */
	a64 task_start_ns;       /* 0 when idle */
	uint64_t inhand_seq;     /* seq of the task in hand: all the parent
				  * reads of it (its record has the rest) */
	a32 load;                /* CHAN_LOAD_*: whether our tasks block
				  * (worker.c look_load); 0 in the padding
				  * of older workers */
	a32 look_ms;             /* CLOCK_MONOTONIC in ms (mod 2^32) of the
				  * look that stored load */
	uint8_t pad1[16];
};

struct chan_rec {            /* the worker, statistics */
	a32 pid;
	a32 state;               /* ARENA_WORKER_* */
	a64 tasks_done;
	a64 task_ns;             /* recent task time (moving average) */
	a64 waits, wakes, wait_ns;
	a64 res_alloc;           /* allocation position (informational) */
	a64 task_seq;            /* seq of the task hot.task_start_ns times
	                          * (stored before it, release): a deadline
	                          * kill is charged to that task only */
};

struct chan_slow {           /* the worker, when it sleeps */
	a64 wake_ann;            /* asleep waiting for tasks (evc.h) */
	a64 space_ann;           /* asleep waiting for result space */
	uint8_t pad[CACHELINE - 16];
};

struct chan_worker {
	struct chan_prod prod;
	struct chan_cons cons;
	struct chan_hot hot;
	struct chan_rec rec;
	struct chan_slow slow;
};
_Static_assert(sizeof(struct chan_prod) == CACHELINE, "prod line");
_Static_assert(sizeof(struct chan_cons) == 2 * CACHELINE, "cons lines");
_Static_assert(sizeof(struct chan_hot) == CACHELINE, "hot line");
_Static_assert(sizeof(struct chan_rec) == CACHELINE, "rec line");
_Static_assert(sizeof(struct chan_slow) == CACHELINE, "slow line");
_Static_assert(offsetof(struct chan_worker, hot) % CACHELINE == 0, "hot aligned");
_Static_assert(offsetof(struct chan_worker, rec) % CACHELINE == 0, "rec aligned");
_Static_assert(offsetof(struct chan_worker, slow) % CACHELINE == 0, "slow aligned");

/* A process's view of a mapped channel. */
struct chan {
	uint8_t *base;
	uint64_t size;
	struct chan_global *g;
	uint32_t workers, sq_mask, cq_mask;
	uint64_t worker_off, stride, sq_off, cq_off, res_off, res_bytes;
	uint64_t res_mask;       /* res_bytes - 1 when a power of two, else 0 */
};

static inline struct chan_worker *chan_w(const struct chan *c, unsigned i)
{
	return (struct chan_worker *)(c->base + c->worker_off + (uint64_t)i * c->stride);
}

static inline struct chan_sqe *chan_sq(const struct chan *c, unsigned i)
{
	return (struct chan_sqe *)((uint8_t *)chan_w(c, i) + c->sq_off);
}

static inline struct chan_cqe *chan_cq(const struct chan *c, unsigned i)
{
	return (struct chan_cqe *)((uint8_t *)chan_w(c, i) + c->cq_off);
}

static inline uint8_t *chan_res(const struct chan *c, unsigned i)
{
	return (uint8_t *)chan_w(c, i) + c->res_off;
}

/* Where free-running result position pos falls in an area: a mask for the
 * default size (a power of two), not a 64-bit division on every task. */
static inline uint64_t chan_res_at(const struct chan *c, uint64_t pos)
{
	return c->res_mask ? pos & c->res_mask : pos % c->res_bytes;
}

struct chan_params {
	uint32_t workers, depth, index_base;
	uint64_t res_bytes, arena_size;
};

/* Creates and maps a channel memfd.  Returns 0 or -errno. */
ARENA_HIDDEN int chan_create(struct chan *c, int *fd, const struct chan_params *prm);
/* Maps and validates a channel fd (read-write or read-only). */
ARENA_HIDDEN int chan_map(struct chan *c, int fd, int writable);
ARENA_HIDDEN void chan_unmap(struct chan *c);
/* The tasks in worker i's SQ entries [head, tail): a run counts its tasks.
 * Words anyone may have scribbled: a span longer than the SQ counts as is,
 * each count is read once, the sum saturates. */
ARENA_HIDDEN uint32_t chan_sq_tasks(const struct chan *c, unsigned i, uint32_t head,
				    uint32_t tail);

#endif
