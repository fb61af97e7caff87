/* SPDX-License-Identifier: MIT */
/*
 * The worker side of a pool: what runs in a worker process.  py_task() is the
 * library's task function: it enters Python, calls func(arena, i) and writes
 * the return value (or the exception) as a record into the task's result
 * space.  Forked workers become Python processes in py_worker_init() (or
 * their first task); spawned ones run worker_main().
 */
#include <unistd.h>

#include "_libarena.h"

/* gc.freeze() in a forked worker: the objects inherited from the parent move
 * to the permanent generation (a splice of list heads, O(1)), so the
 * worker's collections never write to their headers and their pages stay
 * shared.  Without it one full collection in each worker copies every page
 * that holds a container object of the parent. */
static void freeze_inherited(void)
{
	PyObject *gc = PyImport_ImportModule("gc"), *r = NULL;

	if (gc)
		r = PyObject_CallMethod(gc, "freeze", NULL);
	Py_XDECREF(r);
	Py_XDECREF(gc);
	PyErr_Clear();
}

/* Enters Python in a worker.  The first task in a forked worker makes the
 * process a proper Python process: the thread that forked becomes the
 * interpreter's current thread and PyOS_AfterFork_Child() runs (locks, the
 * GIL, threading, random's reseed, os.register_at_fork callbacks).
 * Today's library forks a replacement worker from whichever thread is in a
 * pool call; that thread's state is found from its thread-local slot. */
static void worker_enter(struct task_ctx *cx)
{
	pid_t me = getpid();

	if (cx->ready_pid != me) {
		PyThreadState *ts = PyGILState_GetThisThreadState();

		PyThreadState_Swap(ts);
		PyOS_AfterFork_Child();
		freeze_inherited();
		cx->ready_pid = me;
		cx->pending = NULL; /* the parent's reference, not ours */
		return;
	}
	PyEval_RestoreThread(cx->ts);
}

static void worker_leave(struct task_ctx *cx)
{
	cx->ts = PyEval_SaveThread();
}

#ifdef HAVE_WORKER_INIT
/* In every forked worker, before its first task: the same set-up as
 * worker_enter's first time, then the GIL is let go until a task comes. */
int py_worker_init(void *arg, unsigned worker)
{
	struct task_ctx *cx = arg;

	worker_enter(cx);
	worker_leave(cx);
	return 0;
}
#endif

static int put_plain(uint8_t *out, size_t cap, int tag, const void *d, size_t len)
{
	struct rec h = { .magic = REC_MAGIC, .tag = (uint8_t)tag, .itemsize = 1,
			 .data_off = sizeof(struct rec) };

	if (cap < sizeof(h) || len > cap - sizeof(h) || len > INT32_MAX - 64)
		return -EMSGSIZE;
	memcpy(out, &h, sizeof(h));
	memcpy(out + sizeof(h), d, len);
	return (int)(sizeof(h) + len);
}

/* The exception being raised, as a pickled (exc, traceback text); when the
 * exception itself cannot be pickled, (None, "module.Type", message, text). */
static int put_error(modstate *st, uint8_t *out, size_t cap)
{
	PyObject *t, *v, *tb, *lines = NULL, *text = NULL, *payload = NULL;
	int rc;

	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	if (tb)
		PyException_SetTraceback(v, tb);
	if (st->format_exception)
		lines = PyObject_CallFunctionObjArgs(st->format_exception, t, v, tb ? tb : Py_None, NULL);
	if (lines) {
		PyObject *sep = PyUnicode_FromString("");

		text = sep ? PyUnicode_Join(sep, lines) : NULL;
		Py_XDECREF(sep);
	}
	if (!text) {
		PyErr_Clear();
		text = PyUnicode_FromString("(no traceback)");
	}
	/* SystemExit, KeyboardInterrupt and the like would end the consumer
	 * if raised there as they are: they travel as TaskError. */
	if (PyErr_GivenExceptionMatches(t, PyExc_Exception))
		payload = PyObject_CallFunction(st->dumps, "(OO)i", v, text, 5);
	if (!payload) {
		PyObject *name = PyUnicode_FromString(((PyTypeObject *)t)->tp_name);
		PyObject *msg = PyObject_Str(v);

		PyErr_Clear();
		payload = PyObject_CallFunction(st->dumps, "(OOOO)i", Py_None,
						name ? name : Py_None, msg ? msg : Py_None, text, 5);
		Py_XDECREF(name);
		Py_XDECREF(msg);
	}
	if (payload)
		rc = put_plain(out, cap, REC_ERROR, PyBytes_AS_STRING(payload),
			       (size_t)PyBytes_GET_SIZE(payload));
	else
		rc = -EBADMSG;
	PyErr_Clear();
	Py_XDECREF(payload);
	Py_XDECREF(text);
	Py_XDECREF(lines);
	Py_XDECREF(t);
	Py_XDECREF(v);
	Py_XDECREF(tb);
	return rc;
}

/* The task's return value as a record: bytes-likes raw, numpy arrays raw with
 * dtype and shape, anything else pickled.  -EMSGSIZE when it does not fit;
 * -1 with an exception set when it cannot be encoded. */
static int put_result(modstate *st, PyObject *res, uint8_t *out, size_t cap)
{
	PyObject *nd, *s;
	Py_buffer b;
	int rc;

	if (PyBytes_CheckExact(res))
		return put_plain(out, cap, REC_RAW, PyBytes_AS_STRING(res), (size_t)PyBytes_GET_SIZE(res));
	nd = ndarray_type(st);
	if (nd && PyObject_TypeCheck(res, (PyTypeObject *)nd)) {
		if (PyObject_GetBuffer(res, &b, PyBUF_RECORDS_RO) == 0) {
			size_t need = rec_array_size(&b, 16);

			if (need > cap || need > INT32_MAX)
				rc = -EMSGSIZE;
			else if (rec_array_write(&b, out, 16) == 0)
				rc = (int)need;
			else
				rc = -2;
			PyBuffer_Release(&b);
			if (rc != -2)
				return rc;
		}
		PyErr_Clear(); /* object dtype, odd strides: pickled below */
	} else if (PyObject_CheckBuffer(res)) {
		if (PyObject_GetBuffer(res, &b, PyBUF_SIMPLE) == 0) {
			rc = put_plain(out, cap, REC_RAW, b.buf, (size_t)b.len);
			PyBuffer_Release(&b);
			return rc;
		}
		PyErr_Clear();
	}
	s = PyObject_CallFunction(st->dumps, "Oi", res, 5);
	if (!s)
		return -1;
	rc = put_plain(out, cap, REC_PICKLE, PyBytes_AS_STRING(s), (size_t)PyBytes_GET_SIZE(s));
	Py_DECREF(s);
	return rc;
}

static PyObject *call_task(struct task_ctx *cx, const struct arena_task *t)
{
	PyObject *i, *r;

	if (!cx->arena_obj) {
		/* A spawned worker: its arena is the library's; wrap it. */
		cx->arena_obj = Arena_new_from((PyTypeObject *)cx->arena_type,
					       (struct arena *)t->arena, 1);
		if (!cx->arena_obj)
			return NULL;
	}
	i = PyLong_FromUnsignedLongLong(t->index);
	if (!i)
		return NULL;
	r = PyObject_CallFunctionObjArgs(cx->func, cx->arena_obj, i, NULL);
	Py_DECREF(i);
	return r;
}

int py_task(struct arena_task *t)
{
	struct task_ctx *cx = t->arg;
	PyObject *res;
	int rc;

	worker_enter(cx);
	if (cx->pending && cx->pending_seq == t->user_data) {
		res = cx->pending;  /* the retry with the whole area */
		cx->pending = NULL;
	} else {
		Py_CLEAR(cx->pending);
		res = call_task(cx, t);
	}
	if (!res) {
		rc = put_error(cx->st, t->out, t->out_cap);
	} else {
		rc = put_result(cx->st, res, t->out, t->out_cap);
		if (rc == -EMSGSIZE) {
			cx->pending = res;
			cx->pending_seq = t->user_data;
			res = NULL;
		} else if (rc == -1) {
			rc = put_error(cx->st, t->out, t->out_cap);
		}
		Py_XDECREF(res);
	}
	worker_leave(cx);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Spawned workers                                                           */
/* ------------------------------------------------------------------------ */

PyObject *worker_main(PyObject *module, PyObject *args)
{
	modstate *st = PyModule_GetState(module);
	struct task_ctx cx = { 0 };
	PyObject *func, *arena_type;
	int r;

	if (!PyArg_ParseTuple(args, "OO!:worker_main", &func, &PyType_Type, &arena_type))
		return NULL;
	if (!PyType_IsSubtype((PyTypeObject *)arena_type, st->Arena)) {
		PyErr_SetString(PyExc_TypeError, "arena_type must be a subclass of Arena");
		return NULL;
	}
	cx.st = st;
	cx.func = func;
	cx.arena_type = arena_type;
	cx.ready_pid = getpid();
	cx.ts = PyEval_SaveThread();
	r = arena_worker_main(py_task, &cx);
	PyEval_RestoreThread(cx.ts);
	Py_CLEAR(cx.pending);
	if (cx.arena_obj) {
		/* the library closes its arena: views must not outlive it */
		((ArenaObject *)cx.arena_obj)->a = NULL;
		Py_CLEAR(cx.arena_obj);
	}
	if (r < 0)
		return set_error(st, r, "worker");
	return PyLong_FromLong(r);
}
