/* SPDX-License-Identifier: MIT */
/*
 * What the files of the _libarena extension share: the module state, the
 * record layout, the object structs that more than one file reads, and the
 * helpers that cross files.  Everything else is static in its file.  The
 * extension is built with -fvisibility=hidden, so what is declared here stays
 * inside the .so: PyInit__libarena (module.c) is its one exported symbol.
 *
 * One private header for the module, as CPython's multi-file modules have
 * (Modules/_sqlite/module.h, Modules/_io/_iomodule.h).  The files:
 *   module.c       module state, init, strerror(); every errno -> exception
 *   arena.c        the Arena type
 *   view.c         _View: a zero-copy buffer that holds its owner
 *   record.c       array records: written from a buffer, read into a view
 *   pool.c         the _Pool type: create, stop, close; how its calls wait
 *   pool_submit.c  submit() and submit_range(): tasks in
 *   pool_worker.c  worker side: the task trampoline, fork and spawn hooks
 *   pool_reap.c    consumer side: completions reaped and decoded
 *   iter.c         _Iter: imap / imap_unordered over a window of tasks
 *   stream.c       _Iter's put() and get() (Pool.stream())
 */
#ifndef LIBARENA_PY_LIBARENA_H
#define LIBARENA_PY_LIBARENA_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "arena.h"

/*
 * Built against the library of the same checkout.  Parts of its API arrive
 * over time; mk/python.mk and setup.py look for them in include/arena.h:
 *   HAVE_WORKER_INIT  the worker-init hook (workers forked from one fork
 *                     server): Python's after-fork work runs there.
 *                     Without it, in each worker's first task.
 *   ARENA_POOL_EINTR  blocking waits return -EINTR on a signal (Ctrl-C at
 *                     once).  Without it, waits run in short slices.
 *   HAVE_SUBMIT_RANGE arena_pool_submit_range() for consecutive items.
 *   HAVE_KEEP_FDS     forked workers close the parent's fds but a list.
 *   HAVE_RESULT_SPACE arena_pool_result_space(): a wait that views keep
 *                     from ending is reported (ResultSpaceWarning).
 */

/* ------------------------------------------------------------------------ */
/* Records                                                                   */
/* ------------------------------------------------------------------------ */

/* Numpy arrays (in arenas and in results) and every result carry a small
 * header, struct rec, followed by the bytes at data_off. */
#define REC_MAGIC 0x3152414cu /* "LAR1" */
enum { REC_RAW = 1, REC_ARRAY = 2, REC_PICKLE = 3, REC_ERROR = 4 };
#define REC_MAX_DIM 32
#define REC_MAX_FMT 64

struct rec {
	uint32_t magic;
	uint8_t tag, ndim, fmt_len, _pad;
	uint32_t itemsize;
	uint32_t data_off;  /* from the record's start */
	/* uint64_t shape[ndim]; char fmt[fmt_len]; then data at data_off */
};
_Static_assert(sizeof(struct rec) == 16, "record header layout");

/* ------------------------------------------------------------------------ */
/* Module state                                                              */
/* ------------------------------------------------------------------------ */

typedef struct {
	PyTypeObject *Arena, *Pool, *View, *Iter;
	PyObject *ArenaError, *CorruptArenaError, *WorkerCrashed, *TaskTimeout,
		*ResultTooLarge, *RemoteTraceback, *TaskError, *ResultSpaceWarning;
	PyObject *dumps, *loads;          /* pickle */
	PyObject *ndarray;                /* numpy.ndarray once numpy is imported */
	PyObject *asarray, *array;        /* numpy.asarray / numpy.array */
	PyObject *format_exception;       /* traceback.format_exception */
	PyObject *CancelledError;         /* concurrent.futures.CancelledError */
} modstate;

modstate *state_of_type(PyTypeObject *t);
PyObject *ndarray_type(modstate *st);
PyObject *need_numpy(modstate *st);

/* ------------------------------------------------------------------------ */
/* Errors: the one place where a libarena errno becomes an exception          */
/* ------------------------------------------------------------------------ */

/* Where an error code comes from changes what it means. */
enum err_ctx {
	ERR_CALL,   /* a library call failed */
	ERR_FILE,   /* a call on a file: filename kept, as open() does */
	ERR_TASK,   /* a completion's status: the task's own outcome */
};

/* These set the exception and return NULL (module.c). */
PyObject *set_error_ex(modstate *st, int err, const char *what, enum err_ctx ctx,
		       PyObject *filename);
PyObject *set_error(modstate *st, int err, const char *what);
PyObject *set_file_error(modstate *st, int err, PyObject *path);

/* ------------------------------------------------------------------------ */
/* The objects                                                               */
/* ------------------------------------------------------------------------ */

typedef struct ArenaObject ArenaObject;
typedef struct PoolObject PoolObject;
typedef struct IterObject IterObject;

/* _View (view.c): what a memoryview of an item or a result stands on. */
typedef struct {
	PyObject_HEAD
	ArenaObject *arena;   /* owner for an item, or NULL */
	PoolObject *pool;     /* owner for a result, or NULL */
	struct arena_cqe cqe; /* the result's space, released at death */
	const char *ptr;
	Py_ssize_t len, itemsize;
	int ndim;
	Py_ssize_t shape[REC_MAX_DIM];
	char format[REC_MAX_FMT + 1];
} ViewObject;

/* Arena (arena.c) */
struct ArenaObject {
	PyObject_HEAD
	struct arena *a;
	int borrowed;         /* a spawned worker's arena: not ours to close */
	int closing;
	Py_ssize_t exports;   /* live views */
	Py_ssize_t count;     /* visible items (without the trailer) */
	int kind;
	PyObject *weakrefs;
};

/* _Pool (pool.c) */

/* What a worker needs; lives in the Pool object, copied into each forked
 * worker with the rest of the parent's memory. */
struct task_ctx {
	modstate *st;
	PyObject *func, *arena_obj;    /* func(arena, i) */
	PyObject *arena_type;          /* spawn: type for the worker's arena */
	pid_t ready_pid;               /* the process whose Python is set up */
	PyThreadState *ts;             /* that process's thread, between tasks */
	/* A result too large for the free slice is kept for the retry with the
	 * whole area, so the task function runs once. */
	PyObject *pending;
	uint64_t pending_seq;
};

struct PoolObject {
	PyObject_HEAD
	struct arena_pool *p;
	ArenaObject *arena;
	struct task_ctx cx;
	Py_ssize_t view_threshold;
	Py_ssize_t exports;   /* result views alive */
	/* How long the waits on this pool have ended without progress, back
	 * to back, and after how long that is reported (wait_sliced). */
	uint64_t stall_ns, stall_warn_ns;
	int stall_warned;
	int closing;
	pid_t owner_pid;
	uint64_t next_uid;    /* user data of the next task (every caller's) */
	int calls;            /* threads waiting in the library (GIL released) */
	char **spawn_argv;    /* spawn mode: the workers' argv (kept for restarts) */
	PyObject *spawn_list; /* the bytes it points into */
	PyObject *weakrefs;
};

/* The slice in which a blocking call waits before it looks for signals.
 * With ARENA_POOL_EINTR a signal ends a wait at once; the slice only bounds
 * the case of a signal that came just before the wait began. */
#ifdef ARENA_POOL_EINTR
#define WAIT_SLICE_NS (100 * 1000 * 1000LL)
#else
#define WAIT_SLICE_NS (20 * 1000 * 1000LL)
#endif

/* _Iter (iter.c, stream.c): seq s of the iterator sits in a slot. */
enum { SLOT_FREE = 0, SLOT_RUNNING, SLOT_OK, SLOT_EXC };

struct slot {
	PyObject *value;
	uint64_t index;
	int state;
};

struct IterObject {
	PyObject_HEAD
	PoolObject *pool;
	PyObject *src;          /* iterator of indices, or NULL: the range */
	PyObject *foreign;      /* callable(list): completions of other users */
	uint64_t next, stop;    /* the range still to submit */
	uint64_t uid0;          /* seq s has user data uid0 + s */
	uint64_t head, tail;    /* seqs [head, tail) submitted, not yielded */
	uint64_t *ready;        /* unordered: seqs done, in completion order */
	uint32_t nready, ready_head;
	uint32_t depth;         /* window: tasks not yet handed out */
	uint32_t cap;           /* slots */
	int ordered, with_index, src_done;
	int stream;             /* fed by put(), read by get() */
	int getting;            /* a get() is waiting (it reaps for put()) */
	int empty_wait;         /* a get() waits for a put() on `evt` */
	PyThread_type_lock evt; /* put() -> get(): something to wait for */
	int room_wait;          /* a put() waits for a get() on `room` */
	PyThread_type_lock room; /* get() -> put(): the window has room */
	uint64_t *held;         /* indices taken from src, not yet submitted */
	uint32_t nheld;
	PyObject *err_t, *err_v, *err_tb; /* an error to raise after a result */
	struct slot *slots;     /* seq s at slots[s % depth] */
	PyObject *weakrefs;
};

/* The type specs, made into types by module_exec (module.c). */
extern PyType_Spec View_spec, Arena_spec, Pool_spec, Iter_spec;

/* view.c, record.c */
ViewObject *view_new(modstate *st, const void *ptr, size_t len);
int view_set_array(modstate *st, ViewObject *v, const uint8_t *p, size_t len);
size_t rec_array_size(const Py_buffer *b, size_t align);
int rec_array_write(const Py_buffer *b, uint8_t *out, size_t align);

/* arena.c */
int arena_check_open(ArenaObject *self);
void arena_finish_close(ArenaObject *self);
PyObject *Arena_new_from(PyTypeObject *cls, struct arena *a, int borrowed);

/* pool.c: a pool's lifetime, and how every blocking call on it waits. */
void pool_view_released(PoolObject *p, const struct arena_cqe *c);
int pool_check(PoolObject *self);
/* A blocking library call, run by wait_sliced() with a slice's timeout. */
typedef int (*wait_op)(PoolObject *self, void *arg, int64_t timeout_ns);
int wait_sliced(PoolObject *self, wait_op op, void *arg, int64_t timeout_ns);

/* pool_submit.c: the ops submit with (iterators and streams call them too). */
#define SUBMIT_MAX 256

struct submit_arg {
	struct arena_sqe *sqes;
	unsigned n;
};

struct range_arg {
	uint64_t first, uid;
	uint32_t count;
};

int submit_op(PoolObject *self, void *arg, int64_t t);
int range_op(PoolObject *self, void *arg, int64_t t);
PyObject *Pool_submit(PoolObject *self, PyObject *args);
PyObject *Pool_submit_range(PoolObject *self, PyObject *args);

/* pool_worker.c */
int py_task(struct arena_task *t);
#ifdef HAVE_WORKER_INIT
int py_worker_init(void *arg, unsigned worker);
#endif
PyObject *worker_main(PyObject *module, PyObject *args);

/* pool_reap.c */
#define REAP_MAX 256

int reap_some(PoolObject *self, modstate *st, unsigned max, int64_t timeout_ns,
	      IterObject *it, PyObject **foreign);
PyObject *Pool_reap(PoolObject *self, PyObject *args);

/* iter.c, stream.c */
int iter_owns(IterObject *it, uint64_t uid);
void iter_store(IterObject *it, uint64_t uid, int ok, PyObject *value);
int iter_take(IterObject *it, PyObject **out);
PyObject *Pool_iterate(PoolObject *self, PyObject *args);
PyObject *Iter_put(IterObject *it, PyObject *arg);
PyObject *Iter_get(IterObject *it, PyObject *args, PyObject *kw);

#endif
