/* SPDX-License-Identifier: MIT */
/* The fork server and the start of a worker process (see forkserver.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkserver.h"
#include "pool_internal.h"
#include "worker.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define FSRV_MAGIC 0x76727366u  /* "fsrv" */
#define FSRV_IDLE_MS 250        /* the server's parent-death check */
#define FSRV_EXIT_INIT 74       /* worker_init failed */
#define FSRV_EXIT_EXEC 127      /* execve failed */

struct fsrv_req {
	uint32_t magic, seq, worker;
	uint32_t fail;          /* test builds: answer -EAGAIN, start nothing */
};

struct fsrv_ans {
	uint32_t magic, seq;
	int32_t err;            /* 0: one pidfd attached (no_pidfd: none, the
	                         * pid below); else -errno, no fd */
	int32_t pid;            /* err 0: the worker's pid (with a pidfd, used
	                         * only when the kernel dropped it); else 0 */
};

/* clone3's argument, version 0 (64 bytes), as in <linux/sched.h>. */
struct clone_args0 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

/* ---- the parent-death guard ---------------------------------------------- */

/*
 * Workers are the pool process's children (CLONE_PARENT), but the kernel
 * keeps the *thread* that forked the server as their parent, and
 * PR_SET_PDEATHSIG fires when that thread exits even though the process
 * lives on (the children move to another of its threads).  So the signal is
 * not SIGKILL: it is caught, and the handler ends the process only when the
 * parent *process* changed.  Deaths between fork and prctl are caught by the
 * getppid() check after it; the worker's idle check is a last resort.
 */
static uint32_t guard_ppid;
/* 0: SIGRTMAX, 1: SIGRTMAX - 1 (valgrind keeps SIGRTMAX for itself and
 * refuses a handler).  Per process; set by worker_guard_parent. */
static int guard_alt;

static int pdeath_sig(void)
{
	/* Rarely used by applications; documented in README. */
	return guard_alt ? SIGRTMAX - 1 : SIGRTMAX;
}

static void on_parent_death(int sig)
{
	(void)sig;
	/* Async-signal-safe: getppid and _exit. */
	if ((uint32_t)getppid() != guard_ppid)
		_exit(CHAN_EXIT_ORPHAN);
}

int worker_guard_parent(uint32_t parent_pid)
{
	struct sigaction sa;
	sigset_t set;

	guard_ppid = parent_pid;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_parent_death;
	sa.sa_flags = SA_RESTART;
	sigfillset(&sa.sa_mask);
	if (sigaction(pdeath_sig(), &sa, NULL) < 0) {
		guard_alt = 1;
		if (sigaction(pdeath_sig(), &sa, NULL) < 0)
			return SYS_ERR();
	}
	sigemptyset(&set);
	sigaddset(&set, pdeath_sig());
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	if (prctl(PR_SET_PDEATHSIG, pdeath_sig()) < 0)
		return SYS_ERR();
	/* The parent may have died before the signal was armed. */
	if ((uint32_t)getppid() != parent_pid)
		return -ESRCH;
	return 0;
}

/* ---- in the server and its children -------------------------------------- */

/*
 * As exec would leave them: caught signals back to their default, ignored
 * ones stay ignored, nothing blocked.  A terminal's SIGINT and SIGQUIT go to
 * the whole foreground process group; the pool's process decides what they
 * mean, so the server and the workers ignore them.
 */
static void child_signals(void)
{
	struct sigaction sa, old;
	sigset_t none;
	int sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &old) < 0)
			continue;
		if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)
			sigaction(sig, &sa, NULL);
	}
	sa.sa_handler = SIG_IGN;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Closes every fd but 0, 1, 2 and those listed (at most 64 + 5). */
static void close_fds_except(const int *keep, unsigned n)
{
	int k[CHAN_MAX_WORKERS + 8];
	unsigned i, m = 0;
	int from = 3;

	for (i = 0; i < n && m < sizeof(k) / sizeof(k[0]); i++)
		if (keep[i] >= 3)
			k[m++] = keep[i];
	qsort(k, m, sizeof(k[0]), cmp_int);
	for (i = 0; i < m; i++) {
		if (k[i] > from)
			syscall(SYS_close_range, (unsigned)from, (unsigned)k[i] - 1, 0u);
		if (k[i] + 1 > from)
			from = k[i] + 1;
	}
	syscall(SYS_close_range, (unsigned)from, ~0u, 0u);
}

static unsigned fds_to_keep(const struct arena_pool *p, int *k, int sock)
{
	unsigned n = 0, i;

	k[n++] = sock;
	k[n++] = arena_fd(p->a);
	k[n++] = p->chan_fd;
	k[n++] = p->wake_w;    /* made before the fork server (pool.c) */
	for (i = 0; i < p->nkeep_fds; i++)
		k[n++] = p->keep_fds[i];
	return n;
}

static _Noreturn void exec_worker(struct arena_pool *p, unsigned i)
{
	extern char **environ;
	char fdenv[64], wenv[64];
	char *argv0[2] = { p->worker_path, NULL };
	char **envp;
	size_t n = 0, k, j;
	int afd = arena_fd(p->a);

	while (environ && environ[n])
		n++;
	envp = calloc(n + 3, sizeof(*envp));
	if (!envp)
		_exit(FSRV_EXIT_EXEC);
	/* Drop inherited ARENA_FD/ARENA_WORKER (this process may have been
	 * spawned with them): getenv() in the worker returns the first one. */
	for (k = 0, j = 0; k < n; k++)
		if (strncmp(environ[k], "ARENA_FD=", 9) && strncmp(environ[k], "ARENA_WORKER=", 13))
			envp[j++] = environ[k];
	snprintf(fdenv, sizeof(fdenv), "ARENA_FD=%d,%d", afd, p->chan_fd);
	/* Which worker, whose, and the reapers' wake pipe (pool.c
	 * arena_worker_main). */
	snprintf(wenv, sizeof(wenv), "ARENA_WORKER=%u,%d,%d", i, (int)p->self, p->wake_w);
	envp[j] = fdenv;
	envp[j + 1] = wenv;
	/* These fds, and no other libarena fd, cross the exec. */
	sys_set_cloexec(afd, 0);
	sys_set_cloexec(p->chan_fd, 0);
	sys_set_cloexec(p->wake_w, 0);
	for (k = 0; k < p->nkeep_fds; k++)
		sys_set_cloexec(p->keep_fds[k], 0);
	/* The guard's handler does not survive exec; until arena_worker_main
	 * installs it again, the thread-exit signal must not kill us (a real
	 * parent death meanwhile is seen by its getppid check). */
	signal(pdeath_sig(), SIG_IGN);
	execve(p->worker_path, p->worker_argv ? p->worker_argv : argv0, envp);
	_exit(FSRV_EXIT_EXEC);
}

/* A new worker process, child of the pool's process.  Never returns. */
static _Noreturn void worker_child(struct arena_pool *p, unsigned i, int sock)
{
	struct worker wk;
	int r;

	sys_close(sock);
	if (worker_guard_parent((uint32_t)p->self) < 0)
		_exit(CHAN_EXIT_ORPHAN);
	if (p->worker_path)
		exec_worker(p, i);
	sys_close(p->chan_fd);
	if (p->o.worker_init) {
		r = p->o.worker_init(p->o.worker_init_arg, i);
		if (r < 0)
			_exit(FSRV_EXIT_INIT);
	}
	memset(&wk, 0, sizeof(wk));
	wk.c = &p->c;
	wk.w = chan_w(&p->c, i);
	wk.a = p->a;
	wk.fn = p->o.task ? p->o.task : arena_task_get_item;
	wk.arg = p->o.task_arg;
	wk.id = i;
	wk.parent_pid = (uint32_t)p->self;
	wk.wake_fd = p->wake_w;
	_exit(worker_run(&wk));
}

/*
 * The old clone(2) like fork: no stack (the child runs on a copy of ours),
 * the parent_tid slot (third argument on x86-64 and arm64 alike) receives
 * the pidfd with CLONE_PIDFD.  The exit signal in the low byte is ignored
 * with CLONE_PARENT; SIGCHLD says what we mean.
 */
static long raw_clone(unsigned long flags, int *pidfd)
{
	return syscall(SYS_clone, flags | SIGCHLD, NULL, pidfd, NULL, NULL);
}

/*
 * clone3 like fork, with the pool's process as the parent.  The server has
 * one thread and took no lock, so the child may use malloc and stdio.  Its
 * exit signal is the server's own (CLONE_PARENT reuses it): SIGCHLD.
 * Where clone3 is refused (Linux < 5.3, seccomp profiles that answer
 * ENOSYS or EPERM, valgrind) clone(2) does the same.  The answer carries
 * the pid too: without pidfds (p->no_pidfd) the parent knows the worker by
 * it, and with them it is how the parent ends a worker whose pidfd found no
 * free fd here (fsrv_spawn).
 */
static int clone_worker(struct arena_pool *p, unsigned i, int sock, int *pidfd, pid_t *pid)
{
	struct clone_args0 ca;
	long r;

	if (p->no_pidfd) {
		r = raw_clone(CLONE_PARENT, NULL);
	} else {
		memset(&ca, 0, sizeof(ca));
		ca.flags = CLONE_PARENT | CLONE_PIDFD;
		ca.pidfd = (uint64_t)(uintptr_t)pidfd;
		r = syscall(SYS_clone3, &ca, sizeof(ca));
		if (r < 0 && (errno == ENOSYS || errno == EPERM))
			r = raw_clone(CLONE_PARENT | CLONE_PIDFD, pidfd);
	}
	if (r < 0)
		return SYS_ERR();
	if (r == 0)
		worker_child(p, i, sock);
	*pid = (pid_t)r;
	return 0;
}

static void answer(int sock, const struct fsrv_req *q, int err, int fd, pid_t pid)
{
	struct fsrv_ans a = { FSRV_MAGIC, q->seq, err, (int32_t)pid };
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &a, sizeof(a) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(cbuf, 0, sizeof(cbuf));
		m.msg_control = cbuf;
		m.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	while (sendmsg(sock, &m, MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			_exit(0); /* the pool is gone */
}

static _Noreturn void server_main(struct arena_pool *p, int sock)
{
	int keep[CHAN_MAX_WORKERS + 8];

	child_signals();
	if (worker_guard_parent((uint32_t)p->self) < 0)
		_exit(CHAN_EXIT_ORPHAN);
	/* The application's pipes and sockets: a copy held here would keep
	 * them open for as long as the pool lives. */
	close_fds_except(keep, fds_to_keep(p, keep, sock));
	for (;;) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		struct fsrv_req q;
		ssize_t n;
		int r, fd = -1;
		pid_t pid = 0;

		r = poll(&pfd, 1, FSRV_IDLE_MS);
		if (r == 0) {
			if ((uint32_t)getppid() != (uint32_t)p->self)
				_exit(CHAN_EXIT_ORPHAN);
			continue;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		n = recv(sock, &q, sizeof(q), 0);
		if (n == 0)
			_exit(0); /* the pool closed its end: stop */
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			_exit(1);
		}
		if (n != sizeof(q) || q.magic != FSRV_MAGIC || q.worker >= p->nworkers) {
			answer(sock, &q, -EINVAL, -1, 0);
			continue;
		}
		r = q.fail ? -EAGAIN : clone_worker(p, q.worker, sock, &fd, &pid);
		answer(sock, &q, r, r == 0 ? fd : -1, r == 0 ? pid : 0);
		if (fd >= 0)
			sys_close(fd);
	}
}

/* ---- the parent's side ---------------------------------------------------- */

int fsrv_start(struct arena_pool *p)
{
	struct fsrv *s = &p->fs;
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return SYS_ERR();
	pid = fork();
	if (pid < 0) {
		int r = SYS_ERR();

		sys_close(sv[0]);
		sys_close(sv[1]);
		return r;
	}
	if (pid == 0) {
		sys_close(sv[0]);
		server_main(p, sv[1]);
	}
	sys_close(sv[1]);
	s->sock = sv[0];
	s->pid = pid;
	if (p->no_pidfd)
		return 0; /* known by pid: our unreaped child (reap_server) */
	s->pidfd = sys_pidfd_open(pid);
	if (s->pidfd < 0) {
		int r = s->pidfd;

		kill(pid, SIGKILL);
		waitpid(pid, NULL, __WALL);
		s->pid = 0;
		sys_close(s->sock);
		s->sock = -1;
		return r;
	}
	return 0;
}

/* Kills our child pid unless it has exited, and reaps it. */
static void end_child_pid(pid_t pid)
{
	siginfo_t si;

	sys_kill_child(pid, SIGKILL);
	/* ECHILD (SIGCHLD ignored, or another thread reaped it) is fine. */
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | __WALL) < 0 && errno == EINTR)
		;
}

/* Without a pidfd: the server's exit is polled for, every millisecond. */
static void reap_server_pid(struct fsrv *s, int ms)
{
	while (ms-- > 0 && sys_child_state(s->pid) == 1)
		usleep(1000);
	end_child_pid(s->pid);
}

static void reap_server(struct fsrv *s, int ms)
{
	struct pollfd pfd = { .fd = s->pidfd, .events = POLLIN };
	siginfo_t si;

	if (s->pid <= 0)
		return;
	if (s->pidfd < 0) {
		reap_server_pid(s, ms);
		s->pid = 0;
		return;
	}
	while (poll(&pfd, 1, ms) < 0 && errno == EINTR)
		;
	if (!pfd.revents)
		sys_pidfd_send_signal(s->pidfd, SIGKILL);
	/* ECHILD (SIGCHLD ignored, or another thread reaped it) is fine. */
	while (waitid(P_PIDFD, (id_t)s->pidfd, &si, WEXITED | __WALL) < 0 && errno == EINTR)
		;
	sys_close(s->pidfd);
	s->pidfd = -1;
	s->pid = 0;
}

/* The server misbehaved or died: no more starts. */
static int server_lost(struct fsrv *s, int err)
{
	s->dead = 1;
	if (s->sock >= 0)
		sys_close(s->sock);
	s->sock = -1;
	reap_server(s, 0);
	return err;
}

void fsrv_stop(struct fsrv *s)
{
	if (s->sock >= 0)
		sys_close(s->sock); /* EOF: the server exits */
	s->sock = -1;
	reap_server(s, 1000);
	s->dead = 1;
}

/* The pid a pidfd refers to, from the kernel (fdinfo): -1 when it has
 * exited and been reaped already, -2 when fd is not a pidfd, -3 when we
 * cannot tell (no fd left to read fdinfo with). */
static pid_t pidfd_pid(int fd)
{
	char path[64], buf[512], *l;
	ssize_t n;
	int f, pid = -2;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return errno == EMFILE || errno == ENFILE || errno == ENOMEM ? -3 : -2;
	n = read(f, buf, sizeof(buf) - 1);
	sys_close(f);
	if (n <= 0)
		return -2;
	buf[n] = 0;
	l = strstr(buf, "\nPid:\t");
	if (!l || sscanf(l + 6, "%d", &pid) != 1 || pid < -1)
		return -2;
	return pid;
}

/*
 * Receives one answer: 0 and *fd (or -1), -EPIPE, -EBADMSG, or -EMFILE.  A
 * successful answer carries one fd, or (want_fd 0) none, and a pid.
 * -EMFILE: a well-formed successful answer whose fd the kernel dropped
 * (MSG_CTRUNC, no fd received) because our fd table was full when it came:
 * a worker runs, known only by the answer's pid (fsrv_spawn).
 */
static int recv_answer(struct fsrv *s, struct fsrv_ans *a, int *fd, int want_fd)
{
	char cbuf[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov = { a, sizeof(*a) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int nfd = 0, r = 0;
	ssize_t n;

	*fd = -1;
	do
		n = recvmsg(s->sock, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -EPIPE;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		size_t k, cnt;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < cnt; k++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
			if (nfd++ == 0)
				*fd = f;
			else
				sys_close(f); /* more than one: garbage */
		}
	}
	if (n != sizeof(*a) || (m.msg_flags & MSG_TRUNC) || a->magic != FSRV_MAGIC ||
	    a->seq != s->seq || a->err > 0 || a->err < -4095 || nfd > 1 || a->pid < 0 ||
	    (a->pid != 0) != (a->err == 0))
		r = -EBADMSG;
	else if (m.msg_flags & MSG_CTRUNC)
		r = a->err == 0 && want_fd && nfd == 0 ? -EMFILE : -EBADMSG;
	else if ((a->err == 0 && want_fd) != (nfd == 1))
		r = -EBADMSG;
	if (r < 0 && *fd >= 0) {
		sys_close(*fd);
		*fd = -1;
	}
	return r;
}

/*
 * The pid the server named (no_pidfd, or with a pidfd dropped on the way),
 * checked against the kernel: it must be our child (alive, or exited and
 * not yet reaped) and no other worker's nor the server's.  Returns the pid, 0 when it is gone already (reaped by
 * the kernel with SIGCHLD ignored, or by another thread's waitpid: it is
 * then treated as exited, like the pidfd path's pid -1), or -EBADMSG (a
 * live process that is not our child: garbage).
 */
static pid_t check_child_pid(const struct arena_pool *p, unsigned i, int32_t pid)
{
	unsigned k;

	if (pid <= 0 || pid == p->fs.pid || pid == p->self)
		return -EBADMSG;
	for (k = 0; k < p->nworkers; k++)
		if (k != i && p->w[k].running && p->w[k].pid == pid)
			return -EBADMSG;
	if (sys_child_state(pid) >= 0)
		return pid;
	/* Not our child: gone (ESRCH) or somebody else's (0 or EPERM). */
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 0;
	return -EBADMSG;
}

/*
 * A worker whose pidfd the kernel dropped (recv_answer's -EMFILE), known
 * only by the pid in the answer.  It is our child (CLONE_PARENT) and we
 * have not waited for it, so that pid names no other process until we do:
 * it is checked as a no_pidfd answer's pid is, then killed and reaped.  No
 * worker runs on unknown to us, and the server, which did nothing wrong,
 * serves on.  -EMFILE, or -EBADMSG when the pid is not our child (the
 * server is then lost).  With SIGCHLD ignored, a worker that died on its
 * own is reaped by the kernel and its pid can be reused: the same window as
 * a no_pidfd pool's, and kill() goes only to a pid found to be our live
 * child.
 */
static int end_unreceived(struct arena_pool *p, unsigned i, int32_t pid)
{
	pid_t r = check_child_pid(p, i, pid);

	if (r < 0)
		return server_lost(&p->fs, r);
	if (r > 0)
		end_child_pid(r);
	pool_unseen_exit(p, i);
	return -EMFILE;
}

/* Waits until the server's answer is there: 0, -ETIMEDOUT or -errno. */
static int wait_answer(struct fsrv *s, uint64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = s->sock, .events = POLLIN };
		uint64_t now = sys_now_ns();
		int r;

		if (now >= deadline)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, (int)((deadline - now) / 1000000) + 1);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return SYS_ERR();
	}
}

int fsrv_spawn(struct arena_pool *p, unsigned i, int *pidfd, pid_t *pid)
{
	struct fsrv *s = &p->fs;
	struct fsrv_req q = { FSRV_MAGIC, ++s->seq, i, 0 };
	uint64_t deadline = sys_now_ns() + FSRV_TIMEOUT_MS * 1000000ull;
	struct fsrv_ans a;
	int r, fd, spare = -1;

	if (s->dead || s->sock < 0)
		return -EPIPE;
	if (p->test_fail_starts && p->started_once) {
		p->test_fail_starts--;
		q.fail = 1;
	}
	/* A free fd for the pidfd the answer carries, held until we receive
	 * it: without one the kernel drops it (MSG_CTRUNC) and the worker,
	 * our child, would run on unknown to us.  None (EMFILE): refuse
	 * before anything is started.  Another thread of ours opening an fd
	 * between the close and recvmsg can still take it: then the worker
	 * is ended through its pid (end_unreceived). */
	if (!p->no_pidfd) {
		spare = fcntl(s->sock, F_DUPFD_CLOEXEC, 0);
		if (spare < 0)
			return SYS_ERR();
	}
	/* The socket is empty (one request at a time): a full one means a
	 * server that stopped reading. */
	if (send(s->sock, &q, sizeof(q), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(q))
		r = errno == EAGAIN ? -ETIMEDOUT : -EPIPE;
	else
		r = wait_answer(s, deadline);
	if (spare >= 0)
		sys_close(spare);
	if (r < 0)
		return server_lost(s, r);
	if (p->test_spawn_race)
		p->test_spawn_race(p->test_spawn_race_arg, 0);
	r = recv_answer(s, &a, &fd, !p->no_pidfd);
	if (p->test_spawn_race)
		p->test_spawn_race(p->test_spawn_race_arg, 1);
	if (r == -EMFILE)
		return end_unreceived(p, i, a.pid);
	if (r < 0)
		return server_lost(s, r);
	if (a.err < 0)
		return a.err;
	if (p->no_pidfd) {
		r = check_child_pid(p, i, a.pid);
		if (r < 0)
			return server_lost(s, r);
		*pid = r;
		*pidfd = -1;
		return 0;
	}
	*pid = pidfd_pid(fd);
	if (*pid == -3) {
		/* Our fds ran out, not the server's answer: end the worker
		 * through the pidfd it came with, which we cannot keep. */
		siginfo_t si;

		sys_pidfd_send_signal(fd, SIGKILL);
		while (waitid(P_PIDFD, (id_t)fd, &si, WEXITED | __WALL) < 0 && errno == EINTR)
			;
		sys_close(fd);
		pool_unseen_exit(p, i);
		return -EMFILE;
	}
	if (*pid == -2 || *pid == 0) {
		sys_close(fd);
		return server_lost(s, -EBADMSG);
	}
	/* -1: it is gone already (SIGCHLD ignored); the pidfd says so too. */
	if (*pid < 0)
		*pid = 0;
	*pidfd = fd;
	return 0;
}
