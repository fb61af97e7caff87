/* SPDX-License-Identifier: MIT */
/*
 * libarena: hand a large read-only dataset to a pool of worker processes and
 * get their results back, with zero copies and no server.
 *
 *  - An *arena* is a sealed memfd holding a sequence of items (offset table plus
 *    item bytes).  Every process maps it read-only and reads item i in place.
 *  - A *pool* forks (or spawns) workers that take index tasks from per-worker
 *    submission queues in a shared *channel* memfd, write results into the
 *    channel's result area and post completions carrying the result's offset.
 *    The busy path is loads and stores; futexes are used only to sleep.
 *
 * Conventions: every int-returning function returns >= 0 on success and a
 * negative errno on failure; errno is never used as a side channel.  Objects
 * come back through out-parameters.  Unknown flag bits are -EINVAL.
 * arena_strerror() gives libarena's meaning of an error code.
 */
#ifndef ARENA_H
#define ARENA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library builds with -fvisibility=hidden: what this header declares is
 * its whole exported interface. */
#pragma GCC visibility push(default)

#define ARENA_VERSION_MAJOR 1
#define ARENA_VERSION_MINOR 0

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Codes with a libarena-specific meaning (all are ordinary errno values):
 *   -EBADMSG          corrupt arena/channel: a header field, table entry,
 *                     ring index or result offset is out of bounds
 *   -EPROTONOSUPPORT  magic matches but the format/ABI version is unknown
 *   -EPERM            an fd lacks the seals that make it immutable
 *   -ERANGE           item index out of range
 *   -EMSGSIZE         a task's result does not fit in its worker's result area
 *   -EOWNERDEAD       a task killed its worker too many times (poison task)
 *   -ECANCELED        a task was cancelled by arena_pool_stop(ARENA_STOP_CANCEL)
 *   -EAGAIN           queue full (submit) or empty (reap) with a zero timeout
 *   -ETIMEDOUT        a wait with a timeout expired
 */
const char *arena_strerror(int err);

/* ------------------------------------------------------------------------ */
/* Arena: a sealed, read-only sequence of items in one memfd                 */
/* ------------------------------------------------------------------------ */

struct arena;

/* arena_create() flags */
#define ARENA_CREATE_SPARSE (1u << 0) /* do not reserve pages as data grows:
                                       * holes stay holes (a shortage is then a
                                       * SIGBUS on first write, not an error) */

struct arena_create_opts {
	uint32_t flags;     /* ARENA_CREATE_* */
	uint32_t align;     /* item alignment, power of two, 1..4096; 0 = 8 */
	const char *name;   /* memfd name for /proc/PID/fd; NULL = "arena" */
	uint64_t reserved[4]; /* room to grow: must be zero (else -EINVAL) */
};

/*
 * Creates an empty arena being built.  opts may be NULL for defaults.
 * Returns 0 and *out, or -EINVAL (bad opts, or a reserved word not zero),
 * -ENOMEM, or memfd errors.
 */
int arena_create(struct arena **out, const struct arena_create_opts *opts);

/*
 * Appends one item (a copy of len bytes; len may be 0).  *index (may be NULL)
 * gets the item's index.  Pages are reserved with fallocate as the arena
 * grows, so a memory shortage is -ENOSPC/-ENOMEM here, not a SIGBUS later.
 * Returns 0, -EROFS when sealed, or the reservation error.
 */
int arena_append(struct arena *a, const void *data, size_t len, uint64_t *index);

/* Appends n items at once; *first (may be NULL) gets the first new index. */
int arena_append_many(struct arena *a, const struct iovec *items, size_t n,
		      uint64_t *first);

/*
 * Appends an item of len bytes and returns a writable pointer to it in *data,
 * valid until the next append or seal, so a dataset is written in place.
 * Its bytes are zero until written.
 */
int arena_append_uninit(struct arena *a, size_t len, uint64_t *index, void **data);

/*
 * Seals the arena: writes the offset table and header, drops the writable
 * mapping, applies F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE|F_SEAL_SEAL and maps
 * it read-only.  No process can change the data afterwards.
 * Returns 0, -EROFS if already sealed, -EPERM when the kernel refuses the
 * seals (the arena is then not sealed), or another syscall error.
 */
int arena_seal(struct arena *a);

/* arena_open_fd() flags */
#define ARENA_OPEN_UNSEALED (1u << 0) /* accept an fd without the seals (the
                                       * data may then change under you) */

/*
 * Opens an arena from an fd received from elsewhere.  The fd is duplicated
 * (close-on-exec); the caller keeps its own.  Requires F_SEAL_SHRINK,
 * F_SEAL_GROW and F_SEAL_WRITE unless ARENA_OPEN_UNSEALED, maps read-only and
 * validates every header field against the real file size and every table
 * entry against the data area.
 * Returns 0 and *out; -EBADF (not an fd), -EINVAL (not a regular file/memfd or
 * bad flags), -EPERM (not sealed), -EBADMSG (corrupt or truncated),
 * -EPROTONOSUPPORT (unknown version).
 */
int arena_open_fd(struct arena **out, int fd, uint32_t flags);

/* Writes the sealed arena's image to a regular file (created or truncated). */
int arena_save(const struct arena *a, const char *path);

/*
 * Loads an image saved by arena_save() into a new sealed memfd (so a later
 * change to the file cannot reach readers) and validates it as
 * arena_open_fd() does.
 */
int arena_open_file(struct arena **out, const char *path);

/* Number of items (those appended so far while building). */
uint64_t arena_count(const struct arena *a);

/*
 * Item i, zero copy: *data points into the mapping (NULL when *len is 0 and no
 * bytes exist), valid until arena_close().  Returns 0 or -ERANGE.
 */
int arena_get(const struct arena *a, uint64_t i, const void **data, size_t *len);

/* The memfd (owned by the arena: do not close it). */
int arena_fd(const struct arena *a);

/* Size of the image in bytes (header, items and table). */
uint64_t arena_size(const struct arena *a);

/* 1 when sealed (immutable), 0 while building or when opened unsealed. */
int arena_is_sealed(const struct arena *a);

/* Start of the read-only mapping, for offsets reported by pool results. */
const void *arena_base(const struct arena *a);

/* Unmaps and closes.  NULL is a no-op. */
void arena_close(struct arena *a);

/* ------------------------------------------------------------------------ */
/* Pool: workers, submission and completion queues, results                  */
/* ------------------------------------------------------------------------ */

struct arena_pool;

/*
 * What a task function sees.  The worker calls the task with the arena, the
 * item index and a writable slice of its result area.  The task writes up to
 * out_cap bytes at out and returns the result length, or a negative errno that
 * becomes the completion's status.  If it returns -EMSGSIZE, the worker calls
 * it again with a larger slice: at once with the area's tail where it had
 * offered the released run at the area's start (results restart there early,
 * to stay in a few pages), and, while earlier results still occupy the area,
 * after the consumer releases them, with the whole area; -EMSGSIZE then is
 * final.  So a task may run more than once for one completion.
 * A task may instead point its result at bytes of the arena itself (zero
 * copy) with arena_task_result_ref().
 */
struct arena_task {
	const struct arena *arena;
	uint64_t index;      /* item index submitted */
	uint64_t user_data;  /* copied from the submission */
	uint32_t op;         /* opcode from the submission (user-defined) */
	uint32_t worker;     /* worker id, 0..workers-1 */
	void *out;           /* result slice (in the shared result area) */
	size_t out_cap;      /* its size */
	void *arg;           /* task_arg from the pool options */
	/* set by arena_task_result_ref(); private */
	const void *ref;
	size_t ref_len;
};

typedef int (*arena_task_fn)(struct arena_task *t);

/*
 * Makes the task's result the len bytes at data, which must lie inside the
 * arena (zero copy).  The task then returns 0.  Returns 0 or -EINVAL.
 */
int arena_task_result_ref(struct arena_task *t, const void *data, size_t len);

/*
 * The default task, the seed's get_item: op ARENA_OP_COPY copies item `index`
 * into the result area; op ARENA_OP_REF points the result at the item itself.
 */
#define ARENA_OP_COPY 0u
#define ARENA_OP_REF  1u
int arena_task_get_item(struct arena_task *t);

/* Spin policy before a side sleeps (see README "Spinning"); the values of
 * arena_pool_opts.spin. */
enum arena_spin {
	ARENA_SPIN_AUTO = 0,  /* spin only while spinners < CPUs - 1 */
	ARENA_SPIN_NEVER = 1, /* sleep at once */
	ARENA_SPIN_ALWAYS = 2 /* spin regardless of CPUs (benchmarks) */
};

/* pool flags */
#define ARENA_POOL_ORDERED  (1u << 0) /* reap in submission order */
#define ARENA_POOL_NO_URING (1u << 1) /* supervise with futex timeouts + pidfd
                                       * polls instead of io_uring (also when
                                       * ARENA_NO_URING=1 is in the env) */
#define ARENA_POOL_NO_RESTART (1u << 2) /* do not replace dead workers: their
                                         * tasks move to the survivors */
/*
 * The caller may keep a result unreleased while it releases later ones (a
 * view kept for a while): each worker's results then go round its whole
 * result area, so a result kept stops its worker only once the worker has
 * written about result_bytes after it.  Without this flag a worker whose
 * consumer has released the start of its area restarts there early, once
 * 64 KiB in (results stay in a few pages: each page's first touch is a page
 * fault in the worker and in the parent), and a result kept from then on
 * stops it after as little as 32 KiB, or twice its largest result.
 */
#define ARENA_POOL_HOLD_RESULTS (1u << 3)
/*
 * Interruptible waits: a blocking arena_pool_submit(), _submit_range(),
 * _reap() or _stop() returns -EINTR when a signal handler interrupted its
 * wait, instead of waiting on.  For bindings that must run their own signal
 * handling (Python's Ctrl-C) and then call again; nothing is lost (stop:
 * call it again to go on waiting).  The handler must be installed without
 * SA_RESTART (as Python's are): with SA_RESTART the kernel may resume a wait
 * itself.  A signal that arrives just before a wait starts is seen at that
 * wait's end: a caller that must not miss one waits in bounded slices.
 */
#define ARENA_POOL_EINTR (1u << 8)

/*
 * Called in every forked worker process (the first ones and every
 * replacement) after it started and before it runs a task, with the
 * worker's id.  A binding uses it to set up its runtime in the child (a
 * Python module calls PyOS_AfterFork_Child here).  Return 0, or a negative
 * errno: the worker then exits without running a task (a start failure: a
 * slot whose workers fail 5 times in a row is given up).  Not called for
 * exec'd workers (worker_path), which run arena_worker_main instead.
 */
typedef int (*arena_worker_init_fn)(void *arg, unsigned worker);

/*
 * Options.  Zero means the default for every field, so `{ 0 }` or
 * designated initializers are the way to fill it.  The struct grows only
 * into `reserved`: a library that does not know a field finds it non-zero
 * and fails with -EINVAL, and one that knows it reads zero from an older
 * caller as the default.
 */
struct arena_pool_opts {
	uint32_t flags;          /* ARENA_POOL_* */
	uint32_t workers;        /* number of workers; 0 = 1.  They inherit
	                          * the creating thread's CPU affinity; with
	                          * fewer workers than CPUs, a worker that wakes
	                          * a caller's thread asleep on its own CPU moves
	                          * to another CPU of that mask (never out of
	                          * it; a one-CPU mask stays where it is).
	                          * With more workers than the mask's CPUs
	                          * (two or more) and tasks that never sleep,
	                          * only as many are fed at a time as there
	                          * are CPUs (README, "Spinning and dispatch") */
	uint32_t depth;          /* tasks in flight (submitted, not reaped);
	                          * 0 = 10 (the seed's Queue(10)) */
	uint32_t max_attempts;   /* a task that killed this many workers fails
	                          * with -EOWNERDEAD; 0 = 3, at most 65535
	                          * (more counts as 65535) */
	uint64_t result_bytes;   /* result area per worker; 0 = 1 MiB (sparse:
	                          * only pages written cost memory) */
	uint64_t task_deadline_ns; /* kill a worker whose task runs longer; 0 = none */
	arena_task_fn task;      /* NULL = arena_task_get_item */
	void *task_arg;
	uint32_t spin;           /* ARENA_SPIN_* */
	uint32_t spin_ns;        /* the most an idle worker spins before it sleeps:
				    it spins about twice its recent wait for
				    tasks, not at all when that wait is longer
				    than spin_ns.  0 = default, 50 us */
	/*
	 * Exec'd workers: when worker_path is set, workers are started with
	 * execve(worker_path, worker_argv) instead of running the task in a
	 * fork, and the program must call arena_worker_main().  worker_argv
	 * NULL = { worker_path }.  Both are copied at create.
	 */
	const char *worker_path;
	char *const *worker_argv;
	arena_worker_init_fn worker_init; /* forked workers; NULL = none */
	void *worker_init_arg;
	/*
	 * Fds a worker keeps open besides 0, 1, 2 (and, forked, the arena's):
	 * every other fd the process had at create is closed in workers (see
	 * README "Forking").  The array is copied at create.
	 */
	const int *keep_fds;
	uint32_t nkeep_fds;
	uint32_t reserved0;      /* must be zero */
	uint64_t reserved[8];    /* room to grow: must be zero (else -EINVAL) */
};

/*
 * Creates a pool over a sealed arena and starts its workers.  It forks a
 * small fork server first (so create the pool before starting other threads,
 * as the seed does; see README "Forking"), which starts every worker, the
 * first ones and every replacement, from that moment's state.  The arena
 * must outlive the pool.  opts may be NULL.
 * Returns 0 and *out, -EINVAL (bad options, a reserved word not zero, or an
 * unsealed arena), -ENOMEM, or a syscall error from memfd/fork/clone/exec
 * (-EPIPE or -ETIMEDOUT when the fork server did not answer).
 */
int arena_pool_create(struct arena_pool **out, const struct arena *a,
		      const struct arena_pool_opts *opts);

struct arena_sqe {
	uint64_t index;      /* item index (checked against the arena) */
	uint64_t user_data;  /* returned in the completion */
	uint32_t op;         /* passed to the task function */
	uint32_t flags;      /* must be 0 */
};

/*
 * Timeouts (all waits): < 0 waits for ever, 0 never waits, > 0 is a bound in
 * nanoseconds.
 *
 * Submits up to n tasks; blocks while `depth` tasks are in flight.  Returns
 * the number submitted (>= 1 and <= n): the room it found, when it found
 * some; when it had to wait, what threads that reap took of the batch for it
 * meanwhile (a reap that frees room dispatches entries of a waiting batch
 * itself while more of it is left than the room, then wakes the submitter,
 * whose next call finds room for the rest: one wake-up a call, not one per
 * refill of the depth), also when its timeout, a stop or a failure ended
 * the wait (a count, not the error).  The
 * entries are read, by this thread or a reaping one, only until the call
 * returns.  Errors: -EAGAIN with
 * a zero timeout when full, -ETIMEDOUT, -ERANGE (an index beyond the arena;
 * nothing from that entry on is submitted), -EPIPE after stop, -EINTR (with
 * ARENA_POOL_EINTR), -EINVAL (an entry with flags set), -ECHILD when no
 * worker is left to run a task (every slot given up), or -EBADMSG when the
 * pool failed on a corrupt channel.  Any thread may submit.
 */
int arena_pool_submit(struct arena_pool *p, const struct arena_sqe *sqes,
		      unsigned n, int64_t timeout_ns);

/*
 * Submits the tasks for `count` consecutive items: item first + k with
 * user_data user_data_first + k and `op`, for k = 0 .. count-1, without an
 * array of entries.  Returns the number submitted (a prefix, >= 1), with the
 * errors of arena_pool_submit(): -ERANGE when item `first` is beyond the
 * arena (a range that ends beyond it is submitted up to its last item; the
 * call for the rest then returns -ERANGE).
 */
int arena_pool_submit_range(struct arena_pool *p, uint64_t first, uint32_t count,
			    uint64_t user_data_first, uint32_t op, int64_t timeout_ns);

/* One task, blocking: a convenience over arena_pool_submit(). Returns 0. */
int arena_pool_submit1(struct arena_pool *p, uint64_t index, uint64_t user_data);

struct arena_cqe {
	uint64_t user_data;  /* from the submission */
	uint64_t index;      /* item index of the task */
	uint64_t seq;        /* submission sequence number, from 0 */
	const void *data;    /* result bytes (validated), NULL if len == 0 */
	uint64_t len;
	int32_t status;      /* 0 or negative errno (task error, -EMSGSIZE,
	                      * -EOWNERDEAD, -ETIMEDOUT after the task
	                      * deadline killed it max_attempts times,
	                      * -ECANCELED, -ECHILD when no worker is left) */
	uint32_t worker;     /* worker that ran it (UINT32_MAX: none) */
	uint64_t ticket;     /* private: identifies the result space */
};

/*
 * Reaps up to max completions (waits for at least one within the timeout).
 * With ARENA_POOL_ORDERED they come in submission order.  Each result's space
 * stays valid until arena_pool_release() of that completion; release every
 * reaped completion, or workers will eventually wait for room.
 * Returns the number reaped (>= 1), -EAGAIN (zero timeout, none ready),
 * -ETIMEDOUT, -ENODATA when nothing is in flight and the pool is stopped,
 * -EINTR (with ARENA_POOL_EINTR), or
 * -EBADMSG when a worker corrupted the channel (the pool then fails).
 * Any thread may reap; reapers serialize on a process-private lock.
 */
int arena_pool_reap(struct arena_pool *p, struct arena_cqe *cqes, unsigned max,
		    int64_t timeout_ns);

/*
 * Gives a reaped completion's result space back to its worker.  A
 * completion without result space, or one released already (or not of this
 * pool), is ignored.  Any thread may release, at any time until
 * arena_pool_destroy(), after arena_pool_stop() and after a failure too: the
 * result bytes stay mapped and unchanged until released or destroyed.
 * After destroy, the pool and every result pointer are gone: a binding that
 * hands out views of results must keep the pool alive while a view exists.
 * Returns 0, or -EINVAL (p or cqe NULL).
 */
int arena_pool_release(struct arena_pool *p, const struct arena_cqe *cqe);

/* The same for n completions at once (one lock and one hand-back per worker
 * instead of one per completion: the form for batches of small results).
 * Returns 0, or -EINVAL (p NULL, cqes NULL with n > 0, or n > INT_MAX: a
 * negative count such as a failed reap's result, cast to unsigned). */
int arena_pool_release_many(struct arena_pool *p, const struct arena_cqe *cqes, unsigned n);

/* arena_pool_stop() flags */
#define ARENA_STOP_DRAIN  0u        /* run every queued task first */
#define ARENA_STOP_CANCEL (1u << 0) /* queued tasks complete with -ECANCELED */

/*
 * Stops the pool: no more submissions (-EPIPE); with DRAIN waits until every
 * submitted task has completed (someone must keep reaping and releasing), then
 * tells workers to exit and reaps them (no zombies).  Completions not yet
 * reaped can still be reaped afterwards.  Returns 0, -ETIMEDOUT, -EINTR
 * (with ARENA_POOL_EINTR: call it again to go on), or -EINVAL.
 */
int arena_pool_stop(struct arena_pool *p, uint32_t flags, int64_t timeout_ns);

struct arena_pool_stats {
	uint64_t submitted, completed, reaped;
	uint64_t producer_waits, producer_wakes;   /* futex calls, parent */
	uint64_t consumer_waits, consumer_wakes;
	uint64_t worker_waits, worker_wakes;       /* summed over workers */
	uint64_t wakes_skipped;   /* wake decisions that found nobody asleep */
	uint64_t producer_wait_ns, consumer_wait_ns, worker_wait_ns;
	uint64_t crashes, tasks_rerun, tasks_failed, workers_restarted, hangs_killed;
	uint32_t workers, depth;
	int uring;                /* 1 when supervision uses io_uring */
	uint32_t _pad;
	uint64_t tasks_per_worker[64]; /* first 64 workers */
};

/* Snapshot of the counters.  Returns 0, or -EINVAL (p or st NULL). */
int arena_pool_stats(const struct arena_pool *p, struct arena_pool_stats *st);

/*
 * Worker i's result area, from the pool's own account: *held is the bytes of
 * it that results reaped (or harvested, not yet reaped) and not yet released
 * keep from the worker, counted from the oldest such result (the area is a
 * ring: one result kept for good keeps everything written after it too, once
 * the worker wraps around to it); *size is the area's size; *waiting is 1
 * when the worker says it now waits for space (its own word: a hint).  A
 * worker that waits while its tasks' results are all held waits for a
 * release, and only the caller can make one.  Any pointer may be NULL.
 * Returns 0, -EINVAL or -ERANGE (no worker i).
 */
int arena_pool_result_space(struct arena_pool *p, unsigned i, uint64_t *held, uint64_t *size,
			    int *waiting);

/* Pid of worker i, or -ERANGE / -ESRCH (not running). */
int arena_pool_worker_pid(const struct arena_pool *p, unsigned i);

/* The channel memfd (owned by the pool). */
int arena_pool_channel_fd(const struct arena_pool *p);

/* Stops (cancel) if needed, reaps workers, unmaps, closes.  NULL is a no-op. */
void arena_pool_destroy(struct arena_pool *p);

/* ------------------------------------------------------------------------ */
/* Passing an arena to other processes                                       */
/* ------------------------------------------------------------------------ */

/*
 * Across exec: makes the arena's fd (and the pool's channel fd, when p is not
 * NULL) inheritable and writes "ARENA_FD=<arena>[,<channel>]" into env_buf
 * (for the child's environment; also accepted as an argument).  Call between
 * fork and exec, or use arena_spawn() which does it for one child only.
 * Returns 0, -ENOSPC (buffer too small).
 */
int arena_export_env(const struct arena *a, const struct arena_pool *p,
		     char *env_buf, size_t env_len);

/*
 * posix_spawn()s path with argv and envp plus ARENA_FD: only the arena's fd
 * (and the channel's, when p is not NULL) is inherited; every other libarena
 * fd stays close-on-exec.  *pid gets the pid.
 */
int arena_spawn(pid_t *pid, const char *path, char *const argv[],
		char *const envp[], const struct arena *a,
		const struct arena_pool *p);

/*
 * In the child: attaches from "ARENA_FD=..." (or its value) given in spec, or
 * from the environment when spec is NULL.  Validates as arena_open_fd() and
 * closes the inherited fd (the arena keeps its own duplicate).  When the spec
 * names a channel too, *channel_fd gets it (close-on-exec again) if
 * channel_fd is not NULL, else it is closed.
 */
int arena_attach_env(struct arena **out, int *channel_fd, const char *spec);

/*
 * Over a connected AF_UNIX socket: sends the arena's fd, and the pool's
 * channel fd when p is not NULL, with SCM_RIGHTS plus a small header naming
 * what they are.  Returns 0 or a socket error.
 */
int arena_send(int sock, const struct arena *a, const struct arena_pool *p);

/*
 * Receives what arena_send() sent, within timeout_ns.  Checks the message
 * (the fd count the header announces, memfds, the seals, header and sizes,
 * a valid channel header) before mapping; anything else closes every fd
 * received and returns -EBADMSG (garbage, wrong fd count, not a memfd,
 * corrupt), -EPERM (unsealed), -ECONNRESET (peer hung up mid-message),
 * -ETIMEDOUT.  *channel_fd (may be NULL: then a channel is closed) gets the
 * channel fd or -1.
 */
int arena_recv(int sock, struct arena **out, int *channel_fd, int64_t timeout_ns);

/* ------------------------------------------------------------------------ */
/* Exec'd workers                                                            */
/* ------------------------------------------------------------------------ */

/*
 * In a program started by a pool with worker_path: attaches to the arena and
 * channel named in ARENA_FD ("<arena>,<channel>"), with ARENA_WORKER
 * ("<worker>,<pool pid>,<wake fd>": the write end of the pipe that wakes the
 * pool's reapers) and runs the worker loop with task (NULL =
 * arena_task_get_item) until the pool stops.  Returns the process exit code
 * to use (0 after a clean stop), or a negative errno when the environment or
 * channel is invalid (-EINVAL: a variable missing or malformed, -EBADF: the
 * wake fd is not a pipe's write end).
 */
int arena_worker_main(arena_task_fn task, void *arg);

/* ------------------------------------------------------------------------ */
/* Inspection                                                                */
/* ------------------------------------------------------------------------ */

struct arena_info {
	uint64_t count, size, data_size, table_off, data_off;
	uint32_t version, align, flags, seals;
};

/* Header fields and seals of an arena.  Returns 0. */
int arena_info(const struct arena *a, struct arena_info *info);

struct arena_channel_worker_info {
	int32_t pid;
	uint32_t state;           /* ARENA_WORKER_* */
	uint32_t sq_pending;      /* submitted, not yet taken (the rest of a
	                           * run in hand is not counted) */
	uint32_t cq_pending;      /* completed, not yet reaped */
	uint64_t tasks_done, waits, wakes, task_ns;
	uint64_t result_used;     /* bytes not yet released */
};

#define ARENA_WORKER_EMPTY   0u
#define ARENA_WORKER_RUNNING 1u
#define ARENA_WORKER_SLEEPING 2u
#define ARENA_WORKER_EXITED  3u

struct arena_channel_info {
	uint32_t version, workers, sq_depth, cq_depth;
	uint64_t result_bytes, size;
	uint32_t stopping, consumer_waiters;
	struct arena_channel_worker_info w[64];
};

/*
 * Reads a channel memfd (e.g. another process's, obtained with pidfd_getfd)
 * read-only and reports its layout and occupancy, validating the header.
 * Returns 0, -EBADMSG, -EPROTONOSUPPORT, -EINVAL.
 */
int arena_channel_inspect(int fd, struct arena_channel_info *info);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* ARENA_H */
