/* SPDX-License-Identifier: MIT */
/*
 * _libarena: the CPython extension over libarena (include/arena.h).
 *
 * Small and mechanical on purpose; policy (futures, imap, spawn start-up)
 * lives in the pure-Python package python/libarena/.  Rules kept here:
 *  - multi-phase init, every Python object the module needs in its state;
 *  - every libarena errno becomes an exception in one function, set_error_ex();
 *  - every wait releases the GIL, in slices, checking signals between them;
 *  - a view of an item or of a result holds what it points at (the arena, or
 *    the pool and the result's space) through an export count: close() with
 *    live views defers the unmapping to the last view's death.
 *
 * This file: the module state, the errno -> exception mapping, the
 * module's functions and its init.  The other files: see _libarena.h.
 */
#include "_libarena.h"

/* ------------------------------------------------------------------------ */
/* Module state                                                              */
/* ------------------------------------------------------------------------ */

static struct PyModuleDef libarena_module;

modstate *state_of_type(PyTypeObject *t)
{
	PyObject *m = PyType_GetModuleByDef(t, &libarena_module);

	return m ? PyModule_GetState(m) : NULL;
}

/* numpy is optional: looked up (not imported) when an object might be an
 * array; asarray/array are taken at the same time. */
PyObject *ndarray_type(modstate *st)
{
	PyObject *np;

	if (st->ndarray)
		return st->ndarray;
	np = PyDict_GetItemString(PyImport_GetModuleDict(), "numpy"); /* borrowed */
	if (!np)
		return NULL;
	st->ndarray = PyObject_GetAttrString(np, "ndarray");
	st->asarray = PyObject_GetAttrString(np, "asarray");
	st->array = PyObject_GetAttrString(np, "array");
	if (!st->ndarray || !st->asarray || !st->array) {
		PyErr_Clear();
		Py_CLEAR(st->ndarray);
		Py_CLEAR(st->asarray);
		Py_CLEAR(st->array);
	}
	return st->ndarray;
}

PyObject *need_numpy(modstate *st)
{
	PyObject *np;

	if (st->asarray)
		return st->asarray;
	np = PyImport_ImportModule("numpy");
	if (!np)
		return NULL;
	Py_DECREF(np);
	ndarray_type(st);
	if (!st->asarray)
		PyErr_SetString(PyExc_ImportError, "numpy is needed for array items");
	return st->asarray;
}

/* ------------------------------------------------------------------------ */
/* Errors: the one place where a libarena errno becomes an exception          */
/* ------------------------------------------------------------------------ */

/*
 * Sets the exception for libarena error code err (negative errno) and
 * returns NULL.  what names the operation ("submit", "task for item 7"),
 * filename is for ERR_FILE.  Builtins where Python has one (IndexError,
 * ValueError, MemoryError, TimeoutError, FileNotFoundError...), else
 * ArenaError or a subclass, with errno set and libarena's meaning in
 * strerror.
 */
PyObject *set_error_ex(modstate *st, int err, const char *what, enum err_ctx ctx,
		       PyObject *filename)
{
	PyObject *type, *args, *exc, *msg;
	const char *meaning = arena_strerror(err);
	int e = -err;

	if (ctx == ERR_FILE && e != EBADMSG && e != EPROTONOSUPPORT && e != EPERM) {
		errno = e;
		return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, filename);
	}
	switch (e) {
	case ERANGE:
		PyErr_Format(PyExc_IndexError, "%s: %s", what, meaning);
		return NULL;
	case EINVAL:
		PyErr_Format(PyExc_ValueError, "%s: %s", what, meaning);
		return NULL;
	case ENOMEM:
		PyErr_Format(PyExc_MemoryError, "%s: %s", what, meaning);
		return NULL;
	case EPIPE:
		PyErr_Format(PyExc_ValueError, "%s: the pool is stopped", what);
		return NULL;
	case ECANCELED:
		PyErr_Format(st->CancelledError, "%s: %s", what, meaning);
		return NULL;
	case EBADMSG:
	case EPROTONOSUPPORT:
		type = st->CorruptArenaError;
		break;
	case EOWNERDEAD:
	case ECHILD:
		type = st->WorkerCrashed;
		break;
	case EMSGSIZE:
		type = st->ResultTooLarge;
		break;
	case ETIMEDOUT:
		/* a task's: the deadline killed it max_attempts times */
		type = ctx == ERR_TASK ? st->TaskTimeout : PyExc_TimeoutError;
		if (ctx == ERR_TASK)
			meaning = "ran past task_timeout (its worker was killed each time)";
		break;
	case EPERM:
	case EROFS:
		type = st->ArenaError;
		break;
	default:
		/* Plain system errors: OSError picks its subclass by errno. */
		type = PyExc_OSError;
		break;
	}
	/* OSError(errno, strerror); strerror carries the operation too. */
	msg = PyUnicode_FromFormat("%s: %s", what, meaning);
	args = msg ? Py_BuildValue("(iN)", e, msg) : NULL;
	if (!args)
		return NULL;
	exc = PyObject_Call(type, args, NULL);
	Py_DECREF(args);
	if (exc) {
		PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
		Py_DECREF(exc);
	}
	return NULL;
}

PyObject *set_error(modstate *st, int err, const char *what)
{
	return set_error_ex(st, err, what, ERR_CALL, NULL);
}

PyObject *set_file_error(modstate *st, int err, PyObject *path)
{
	return set_error_ex(st, err, "open", ERR_FILE, path);
}

/* ------------------------------------------------------------------------ */
/* Module functions (worker_main is in pool_worker.c)                         */
/* ------------------------------------------------------------------------ */

static PyObject *mod_strerror(PyObject *module, PyObject *arg)
{
	int e = PyLong_AsLong(arg);

	if (e == -1 && PyErr_Occurred())
		return NULL;
	return PyUnicode_FromString(arena_strerror(e > 0 ? -e : e));
}

static PyMethodDef module_methods[] = {
	{ "worker_main", worker_main, METH_VARARGS,
	  "worker_main(func, arena_type) -> int\n\n"
	  "In a spawned worker: runs func(arena, i) for each task until the pool stops." },
	{ "strerror", mod_strerror, METH_O, "strerror(errno) -> str: libarena's meaning of an error code" },
	{ NULL, NULL, 0, NULL },
};

/* ------------------------------------------------------------------------ */
/* Module                                                                    */
/* ------------------------------------------------------------------------ */

static PyObject *new_exc(PyObject *m, const char *name, PyObject *base, const char *doc)
{
	PyObject *e = PyErr_NewExceptionWithDoc(name, doc, base, NULL);

	if (e && PyModule_AddObjectRef(m, strrchr(name, '.') + 1, e) < 0)
		Py_CLEAR(e);
	return e;
}

static PyObject *import_attr(const char *mod, const char *attr)
{
	PyObject *m = PyImport_ImportModule(mod), *a;

	if (!m)
		return NULL;
	a = PyObject_GetAttrString(m, attr);
	Py_DECREF(m);
	return a;
}

static int module_exec(PyObject *m)
{
	modstate *st = PyModule_GetState(m);
	PyObject *base;

	st->View = (PyTypeObject *)PyType_FromModuleAndSpec(m, &View_spec, NULL);
	st->Arena = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Arena_spec, NULL);
	st->Pool = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Pool_spec, NULL);
	st->Iter = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Iter_spec, NULL);
	if (!st->View || !st->Arena || !st->Pool || !st->Iter)
		return -1;
	if (PyModule_AddType(m, st->Arena) < 0 || PyModule_AddType(m, st->Pool) < 0)
		return -1;
	st->ArenaError = new_exc(m, "libarena.ArenaError", PyExc_OSError,
		"An error from libarena; errno is set, strerror says libarena's meaning.");
	if (!st->ArenaError)
		return -1;
	st->CorruptArenaError = new_exc(m, "libarena.CorruptArenaError", st->ArenaError,
		"A corrupt or unknown arena/channel/result record (EBADMSG, EPROTONOSUPPORT).");
	st->WorkerCrashed = new_exc(m, "libarena.WorkerCrashed", st->ArenaError,
		"The task killed its worker max_attempts times (EOWNERDEAD), or no worker is left.");
	st->ResultTooLarge = new_exc(m, "libarena.ResultTooLarge", st->ArenaError,
		"The task's result does not fit in its worker's result area (EMSGSIZE): raise result_bytes.");
	if (!st->CorruptArenaError || !st->WorkerCrashed || !st->ResultTooLarge)
		return -1;
	base = PyTuple_Pack(2, st->WorkerCrashed, PyExc_TimeoutError);
	if (!base)
		return -1;
	st->TaskTimeout = new_exc(m, "libarena.TaskTimeout", base,
		"The task ran past task_timeout max_attempts times (each time its worker was killed).");
	Py_DECREF(base);
	st->TaskError = new_exc(m, "libarena.TaskError", PyExc_Exception,
		"A task raised an exception that could not be pickled: args are (type name, message).");
	st->RemoteTraceback = new_exc(m, "libarena.RemoteTraceback", PyExc_Exception,
		"The traceback of an exception raised in a worker, as text (set as __cause__).");
	st->ResultSpaceWarning = new_exc(m, "libarena.ResultSpaceWarning", PyExc_RuntimeWarning,
		"A wait on a pool made no progress for a while because a worker waits for result\n"
		"space that result views still alive hold (Pool(view_threshold=...)): drop them.");
	if (!st->TaskTimeout || !st->TaskError || !st->RemoteTraceback || !st->ResultSpaceWarning)
		return -1;
	st->dumps = import_attr("pickle", "dumps");
	st->loads = import_attr("pickle", "loads");
	st->format_exception = import_attr("traceback", "format_exception");
	st->CancelledError = import_attr("concurrent.futures", "CancelledError");
	if (!st->dumps || !st->loads || !st->format_exception || !st->CancelledError)
		return -1;
	if (PyModule_AddIntConstant(m, "VERSION_MAJOR", ARENA_VERSION_MAJOR) < 0 ||
	    PyModule_AddIntConstant(m, "VERSION_MINOR", ARENA_VERSION_MINOR) < 0)
		return -1;
	return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg)
{
	modstate *st = PyModule_GetState(m);

	Py_VISIT(st->View);
	Py_VISIT(st->Arena);
	Py_VISIT(st->Pool);
	Py_VISIT(st->Iter);
	Py_VISIT(st->ArenaError);
	Py_VISIT(st->CorruptArenaError);
	Py_VISIT(st->WorkerCrashed);
	Py_VISIT(st->TaskTimeout);
	Py_VISIT(st->ResultTooLarge);
	Py_VISIT(st->RemoteTraceback);
	Py_VISIT(st->TaskError);
	Py_VISIT(st->ResultSpaceWarning);
	Py_VISIT(st->dumps);
	Py_VISIT(st->loads);
	Py_VISIT(st->ndarray);
	Py_VISIT(st->asarray);
	Py_VISIT(st->array);
	Py_VISIT(st->format_exception);
	Py_VISIT(st->CancelledError);
	return 0;
}

static int module_clear(PyObject *m)
{
	modstate *st = PyModule_GetState(m);

	Py_CLEAR(st->View);
	Py_CLEAR(st->Arena);
	Py_CLEAR(st->Pool);
	Py_CLEAR(st->Iter);
	Py_CLEAR(st->ArenaError);
	Py_CLEAR(st->CorruptArenaError);
	Py_CLEAR(st->WorkerCrashed);
	Py_CLEAR(st->TaskTimeout);
	Py_CLEAR(st->ResultTooLarge);
	Py_CLEAR(st->RemoteTraceback);
	Py_CLEAR(st->TaskError);
	Py_CLEAR(st->ResultSpaceWarning);
	Py_CLEAR(st->dumps);
	Py_CLEAR(st->loads);
	Py_CLEAR(st->ndarray);
	Py_CLEAR(st->asarray);
	Py_CLEAR(st->array);
	Py_CLEAR(st->format_exception);
	Py_CLEAR(st->CancelledError);
	return 0;
}

static void module_free(void *m)
{
	module_clear(m);
}

static PyModuleDef_Slot module_slots[] = {
	{ Py_mod_exec, module_exec },
	{ 0, NULL },
};

static struct PyModuleDef libarena_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "libarena._libarena",
	.m_doc = "The C half of libarena (use the libarena package).",
	.m_size = sizeof(modstate),
	.m_methods = module_methods,
	.m_slots = module_slots,
	.m_traverse = module_traverse,
	.m_clear = module_clear,
	.m_free = module_free,
};

PyMODINIT_FUNC PyInit__libarena(void)
{
	return PyModuleDef_Init(&libarena_module);
}
