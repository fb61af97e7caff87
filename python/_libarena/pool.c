/* SPDX-License-Identifier: MIT */
/*
 * The _Pool type under libarena.Pool: created (the workers fork or spawn
 * here), stopped, closed; its lifetime with result views alive; and
 * wait_sliced(), through which every blocking call on the pool waits.
 * Submitting is in pool_submit.c, the worker side in pool_worker.c, reaping
 * in pool_reap.c, iterators in iter.c.
 */
#include <time.h>
#include <unistd.h>

#include "_libarena.h"

static void pool_finish_close(PoolObject *self)
{
	if (!self->p)
		return;
	if (self->owner_pid == getpid()) {
		struct arena_pool *p = self->p;

		/* Another thread may be waiting in the pool (close() from a
		 * thread other than the consumer's): it leaves at the end of
		 * its slice, seeing `closing`; destroy only then. */
		self->closing = 1;
		while (self->calls > 0) {
			struct timespec ts = { 0, 1000 * 1000 };

			Py_BEGIN_ALLOW_THREADS
			arena_pool_stop(p, ARENA_STOP_CANCEL, 0);
			nanosleep(&ts, NULL);
			Py_END_ALLOW_THREADS
		}
		Py_BEGIN_ALLOW_THREADS
		arena_pool_destroy(p);
		Py_END_ALLOW_THREADS
	}
	self->p = NULL;
	/* The pool was one of the arena's users (see Pool_init). */
	if (--self->arena->exports == 0 && self->arena->closing)
		arena_finish_close(self->arena);
}

/* A result view died: its space goes back to its worker. */
void pool_view_released(PoolObject *p, const struct arena_cqe *c)
{
	if (p->p && p->owner_pid == getpid())
		arena_pool_release(p->p, c);
	if (--p->exports == 0 && p->closing)
		pool_finish_close(p);
}

#ifdef HAVE_RESULT_SPACE
/*
 * The waits on this pool have made no progress for stall_warn_ns: when a
 * worker waits for result space while result views of ours are alive, the
 * views are why (nothing else frees that space), and waiting on cannot end
 * until the caller drops some.  Says so, once a pool, as a
 * ResultSpaceWarning (an exception where warnings are errors).  -1 with
 * that exception set, else 0.
 */
static int stall_report(PoolObject *self)
{
	modstate *st = state_of_type(Py_TYPE(self));
	uint64_t held, size;
	int waiting;
	unsigned i;

	if (self->stall_warned || !self->exports)
		return 0;
	/* Every worker: -ERANGE past the last one. */
	for (i = 0; arena_pool_result_space(self->p, i, &held, &size, &waiting) == 0; i++) {
		char msg[400];

		if (!waiting)
			continue;
		self->stall_warned = 1;
		/* PyErr_WarnFormat has no %f. */
		snprintf(msg, sizeof(msg),
			 "libarena: no progress for %.1f s: worker %u waits for result space, and "
			 "%.2f of its %.2f MiB are held by results still alive as views (%zd of "
			 "them in this pool); it goes on once they are released (del them), or "
			 "create the Pool with view_threshold=None (copies)", self->stall_ns / 1e9,
			 i, held / 1048576.0, size / 1048576.0, self->exports);
		return PyErr_WarnEx(st->ResultSpaceWarning, msg, 1) < 0 ? -1 : 0;
	}
	return 0;
}
#endif

/* Waits in slices, releasing the GIL, so that a signal handler (Ctrl-C) runs
 * between them.  op is called with a slice's timeout; it returns like the
 * library's waits.  Returns op's result or -EINTR with an exception set. */
int wait_sliced(PoolObject *self, wait_op op, void *arg, int64_t timeout_ns)
{
	int64_t left = timeout_ns;
	int r;

	for (;;) {
		int64_t slice = (left < 0 || left > WAIT_SLICE_NS) ? WAIT_SLICE_NS : left;

		if (timeout_ns == 0)
			slice = 0;
		if (!self->p || self->closing) {
			/* closed by another thread while we waited */
			PyErr_SetString(PyExc_ValueError, "the pool was closed");
			return -EINTR;
		}
		if (slice == 0) {
			/* Never waits: keep the GIL (dropping it on every
			 * put() hands it to the consumer thread each time). */
			r = op(self, arg, 0);
		} else {
			self->calls++;
			Py_BEGIN_ALLOW_THREADS
			r = op(self, arg, slice);
			Py_END_ALLOW_THREADS
			self->calls--;
		}
		if (r == -EINTR) {
			/* ARENA_POOL_EINTR: a handler ran; Python's runs now */
			if (PyErr_CheckSignals() < 0)
				return -EINTR;
			continue;
		}
		if (r != -ETIMEDOUT) {
			self->stall_ns = 0;
			return r;
		}
		if (timeout_ns == 0)
			return r;
#ifdef HAVE_RESULT_SPACE
		self->stall_ns += (uint64_t)slice;
		if (self->stall_ns >= self->stall_warn_ns && stall_report(self) < 0)
			return -EINTR;
#endif
		if (left >= 0) {
			left -= slice;
			if (left <= 0)
				return r;
		}
		if (PyErr_CheckSignals() < 0)
			return -EINTR;
	}
}

int pool_check(PoolObject *self)
{
	if (!self->p || self->closing) {
		PyErr_SetString(PyExc_ValueError, "operation on a closed pool");
		return -1;
	}
	if (self->owner_pid != getpid()) {
		PyErr_SetString(PyExc_RuntimeError, "a pool can be used only by the process that created it");
		return -1;
	}
	return 0;
}

static PyObject *Pool_take_uids(PoolObject *self, PyObject *arg)
{
	unsigned long long n = PyLong_AsUnsignedLongLong(arg), u;

	if (n == (unsigned long long)-1 && PyErr_Occurred())
		return NULL;
	u = self->next_uid;
	self->next_uid += n;
	return PyLong_FromUnsignedLongLong(u);
}

static int stop_op(PoolObject *self, void *arg, int64_t t)
{
	return arena_pool_stop(self->p, *(uint32_t *)arg, t);
}

static PyObject *Pool_stop(PoolObject *self, PyObject *args)
{
	modstate *st = state_of_type(Py_TYPE(self));
	int cancel = 0, r;
	long long timeout_ns = -1;
	uint32_t flags;

	if (!PyArg_ParseTuple(args, "|pL:stop", &cancel, &timeout_ns))
		return NULL;
	if (pool_check(self) < 0)
		return NULL;
	flags = cancel ? ARENA_STOP_CANCEL : ARENA_STOP_DRAIN;
	r = wait_sliced(self, stop_op, &flags, timeout_ns);
	if (r == -EINTR)
		return NULL;
	if (r < 0)
		return set_error(st, r, "stop");
	Py_RETURN_NONE;
}

static PyObject *Pool_close(PoolObject *self, PyObject *unused)
{
	uint32_t flags = ARENA_STOP_CANCEL;

	if (!self->p || self->closing || self->owner_pid != getpid())
		Py_RETURN_NONE;
	self->closing = 1;
	if (self->exports == 0) {
		pool_finish_close(self);
		Py_RETURN_NONE;
	}
	/* Result views are alive: stop the workers (a worker waiting for
	 * space that a view holds gives up under CANCEL); the last view
	 * unmaps the channel. */
	Py_BEGIN_ALLOW_THREADS
	arena_pool_stop(self->p, flags, 5LL * 1000 * 1000 * 1000);
	Py_END_ALLOW_THREADS
	Py_RETURN_NONE;
}

static PyObject *Pool_worker_pids(PoolObject *self, PyObject *unused)
{
	struct arena_pool_stats s;
	PyObject *l;
	unsigned i;

	if (pool_check(self) < 0)
		return NULL;
	arena_pool_stats(self->p, &s);
	l = PyList_New(0);
	for (i = 0; l && i < s.workers; i++) {
		int pid = arena_pool_worker_pid(self->p, i);
		PyObject *o = PyLong_FromLong(pid > 0 ? pid : 0);

		if (!o || PyList_Append(l, o) < 0)
			Py_CLEAR(l);
		Py_XDECREF(o);
	}
	return l;
}

static PyObject *Pool_stats(PoolObject *self, PyObject *unused)
{
	struct arena_pool_stats s;

	if (pool_check(self) < 0)
		return NULL;
	arena_pool_stats(self->p, &s);
	return Py_BuildValue("{sKsKsKsKsKsKsKsKsIsIsI}",
			     "submitted", (unsigned long long)s.submitted,
			     "completed", (unsigned long long)s.completed,
			     "reaped", (unsigned long long)s.reaped,
			     "crashes", (unsigned long long)s.crashes,
			     "tasks_rerun", (unsigned long long)s.tasks_rerun,
			     "tasks_failed", (unsigned long long)s.tasks_failed,
			     "workers_restarted", (unsigned long long)s.workers_restarted,
			     "hangs_killed", (unsigned long long)s.hangs_killed,
			     "workers", s.workers, "depth", s.depth, "uring", (unsigned)s.uring);
}

static char **argv_from(PyObject *list)
{
	Py_ssize_t n = PyList_GET_SIZE(list), i;
	char **v = PyMem_Calloc((size_t)n + 1, sizeof(char *));

	if (!v) {
		PyErr_NoMemory();
		return NULL;
	}
	for (i = 0; i < n; i++) {
		PyObject *b = PyList_GET_ITEM(list, i);

		if (!PyBytes_Check(b)) {
			PyMem_Free(v);
			PyErr_SetString(PyExc_TypeError, "spawn argv must be a list of bytes");
			return NULL;
		}
		v[i] = PyBytes_AS_STRING(b);
	}
	return v;
}

static int Pool_init(PoolObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "arena", "func", "workers", "depth", "max_attempts",
				  "result_bytes", "task_timeout_ns", "view_threshold",
				  "spawn_argv", "keep_fds", "stall_warn_ns", NULL };
	modstate *st = state_of_type(Py_TYPE(self));
	struct arena_pool_opts o = { 0 };
	unsigned workers = 0, depth = 0, attempts = 0;
	unsigned long long result_bytes = 0, deadline = 0, stall_warn_ns = 5000000000ull;
	Py_ssize_t threshold = 65536;
	PyObject *arena, *func, *argv = Py_None, *keep = Py_None;
	int keep_fds[64];
	unsigned nkeep = 0;
	char **cargv = NULL;
	int r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O|IIIKKnOOK:_Pool", kwlist, st->Arena, &arena,
					 &func, &workers, &depth, &attempts, &result_bytes,
					 &deadline, &threshold, &argv, &keep, &stall_warn_ns))
		return -1;
	if (keep != Py_None) {
		PyObject *seq = PySequence_Fast(keep, "keep_fds must be a sequence of fds");
		Py_ssize_t k;

		if (!seq)
			return -1;
		if (PySequence_Fast_GET_SIZE(seq) > 64) {
			Py_DECREF(seq);
			PyErr_SetString(PyExc_ValueError, "keep_fds: at most 64 fds");
			return -1;
		}
		for (k = 0; k < PySequence_Fast_GET_SIZE(seq); k++) {
			int fd = PyObject_AsFileDescriptor(PySequence_Fast_GET_ITEM(seq, k));

			if (fd < 0) {
				Py_DECREF(seq);
				return -1;
			}
			keep_fds[nkeep++] = fd;
		}
		Py_DECREF(seq);
	}
	if (self->p) {
		PyErr_SetString(PyExc_RuntimeError, "_Pool already initialised");
		return -1;
	}
	if (arena_check_open((ArenaObject *)arena) < 0)
		return -1;
	if (!PyCallable_Check(func)) {
		PyErr_SetString(PyExc_TypeError, "func must be callable");
		return -1;
	}
	if (argv != Py_None) {
		if (!PyList_Check(argv) || PyList_GET_SIZE(argv) < 1) {
			PyErr_SetString(PyExc_TypeError, "spawn_argv must be a non-empty list of bytes");
			return -1;
		}
		cargv = argv_from(argv);
		if (!cargv)
			return -1;
	}
	self->arena = (ArenaObject *)Py_NewRef(arena);
	self->cx.st = st;
	self->cx.func = Py_NewRef(func);
	self->cx.arena_obj = Py_NewRef(arena);
	/* Negative: no views, every result is copied (the default). */
	self->view_threshold = threshold < 0 ? PY_SSIZE_T_MAX : threshold < 1 ? 1 : threshold;
	self->stall_warn_ns = stall_warn_ns;
	self->owner_pid = getpid();
	o.workers = workers;
	o.depth = depth;
	o.max_attempts = attempts;
	o.result_bytes = result_bytes;
	o.task_deadline_ns = deadline;
	o.task = py_task;
	o.task_arg = &self->cx;
#ifdef ARENA_POOL_EINTR
	o.flags |= ARENA_POOL_EINTR;
#endif
#ifdef ARENA_POOL_HOLD_RESULTS
	/* Views may be kept while later results are read: a view then stops
	 * its worker only after about result_bytes (the docstring's promise),
	 * not after the run at the area's start. */
	if (threshold >= 0)
		o.flags |= ARENA_POOL_HOLD_RESULTS;
#endif
#ifdef HAVE_KEEP_FDS
	/* Forked workers close every fd of ours but these (and 0, 1, 2). */
	o.keep_fds = nkeep ? keep_fds : NULL;
	o.nkeep_fds = nkeep;
#else
	(void)keep_fds;
	if (nkeep) {
		PyErr_SetString(PyExc_ValueError, "keep_fds: this libarena keeps every fd");
		return -1;
	}
#endif
#ifdef HAVE_WORKER_INIT
	if (!cargv) {   /* forked workers only: exec'd ones run _worker.main */
		o.worker_init = py_worker_init;
		o.worker_init_arg = &self->cx;
	}
#endif
	if (cargv) {
		o.worker_path = cargv[0];
		o.worker_argv = cargv;
		r = arena_pool_create(&self->p, self->arena->a, &o);
		/* posix_spawn copied what it needed for the first workers;
		 * replacements need argv again: keep it with the pool. */
		self->spawn_argv = cargv;
		self->spawn_list = Py_NewRef(argv);
	} else {
		/* The workers fork here, from this thread, with the GIL held:
		 * Python's fork protocol around it, the child half in each
		 * worker's first task (worker_enter). */
		PyOS_BeforeFork();
		r = arena_pool_create(&self->p, self->arena->a, &o);
		PyOS_AfterFork_Parent();
	}
	if (r < 0) {
		self->p = NULL;
		set_error(st, r, "pool create");
		return -1;
	}
	/* The arena must outlive the pool: arena.close() now only marks it. */
	self->arena->exports++;
	return 0;
}

static void Pool_dealloc(PoolObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);

	PyObject_GC_UnTrack(self);
	if (self->weakrefs)
		PyObject_ClearWeakRefs((PyObject *)self);
	/* Views hold a reference: none is alive here. */
	pool_finish_close(self);
	Py_CLEAR(self->cx.func);
	Py_CLEAR(self->cx.arena_obj);
	Py_CLEAR(self->cx.pending);
	Py_CLEAR(self->arena);
	Py_CLEAR(self->spawn_list);
	PyMem_Free(self->spawn_argv);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static int Pool_traverse(PoolObject *self, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(self));
	Py_VISIT(self->cx.func);
	return 0;
}

static int Pool_clear(PoolObject *self)
{
	/* A cycle through func: the workers go first, then the function. */
	if (self->exports == 0)
		pool_finish_close(self);
	Py_CLEAR(self->cx.func);
	return 0;
}

static PyObject *Pool_enter(PoolObject *self, PyObject *unused)
{
	return Py_NewRef(self);
}

static PyObject *Pool_exit(PoolObject *self, PyObject *args)
{
	return Pool_close(self, NULL);
}

static PyObject *Pool_get_closed(PoolObject *self, void *c)
{
	return PyBool_FromLong(!self->p || self->closing);
}

static PyMethodDef Pool_methods[] = {
	{ "submit", (PyCFunction)Pool_submit, METH_VARARGS,
	  "submit(indices, first_uid, timeout_ns=-1) -> int\n\n"
	  "Submits tasks for the item indices; task k gets user data first_uid + k.\n"
	  "Returns how many were submitted (fewer when the timeout expired)." },
	{ "submit_range", (PyCFunction)Pool_submit_range, METH_VARARGS,
	  "submit_range(first, count, first_uid, timeout_ns=-1) -> int\n\n"
	  "Submits tasks for items first .. first+count-1 (user data first_uid + k).\n"
	  "Returns how many were submitted (fewer when the timeout expired)." },
	{ "iterate", (PyCFunction)Pool_iterate, METH_VARARGS,
	  "iterate(indices, ordered, with_index, depth, foreign) -> iterator\n\n"
	  "Results of the tasks for indices (None: every item), at most depth in flight;\n"
	  "completions of other users go to foreign(list of (uid, index, ok, value))." },
	{ "take_uids", (PyCFunction)Pool_take_uids, METH_O,
	  "take_uids(n) -> int: the first of n fresh user data values" },
	{ "reap", (PyCFunction)Pool_reap, METH_VARARGS,
	  "reap(max=256, timeout_ns=-1) -> list | None\n\n"
	  "Completions as (uid, index, ok, value) tuples; value is the result or\n"
	  "the exception.  [] when the timeout expired, None when the pool is\n"
	  "stopped and nothing is in flight." },
	{ "stop", (PyCFunction)Pool_stop, METH_VARARGS,
	  "stop(cancel=False, timeout_ns=-1)\n\nNo more submissions; drains (or cancels) queued tasks." },
	{ "close", (PyCFunction)Pool_close, METH_NOARGS,
	  "close()\n\nStops the workers and reaps them; live result views keep the channel mapped." },
	{ "worker_pids", (PyCFunction)Pool_worker_pids, METH_NOARGS, "worker_pids() -> list of int (0: not running)" },
	{ "stats", (PyCFunction)Pool_stats, METH_NOARGS, "stats() -> dict of counters" },
	{ "__enter__", (PyCFunction)Pool_enter, METH_NOARGS, NULL },
	{ "__exit__", (PyCFunction)Pool_exit, METH_VARARGS, NULL },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef Pool_getset[] = {
	{ "closed", (getter)Pool_get_closed, NULL, "True after close()", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyMemberDef Pool_members[] = {
	{ "__weaklistoffset__", T_PYSSIZET, offsetof(PoolObject, weakrefs), READONLY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

static PyType_Slot Pool_slots[] = {
	{ Py_tp_doc, "_Pool(arena, func, workers=0, depth=0, max_attempts=0, result_bytes=0, "
		     "task_timeout_ns=0, view_threshold=65536, spawn_argv=None)\n\n"
		     "The low-level pool under libarena.Pool (use that)." },
	{ Py_tp_init, Pool_init },
	{ Py_tp_dealloc, Pool_dealloc },
	{ Py_tp_traverse, Pool_traverse },
	{ Py_tp_clear, Pool_clear },
	{ Py_tp_methods, Pool_methods },
	{ Py_tp_getset, Pool_getset },
	{ Py_tp_members, Pool_members },
	{ 0, NULL },
};

PyType_Spec Pool_spec = {
	.name = "libarena._libarena._Pool",
	.basicsize = sizeof(PoolObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.slots = Pool_slots,
};
