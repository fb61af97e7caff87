/* SPDX-License-Identifier: MIT */
/* Syscall wrappers returning 0/value or -errno (see sys.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys.h"

int sys_memfd_create(const char *name, unsigned flags)
{
	int fd = memfd_create(name, flags);
	return fd < 0 ? SYS_ERR() : fd;
}

int sys_ftruncate(int fd, uint64_t size)
{
	return ftruncate(fd, (off_t)size) < 0 ? SYS_ERR() : 0;
}

int sys_fallocate(int fd, uint64_t off, uint64_t len)
{
	int r;

	do
		r = fallocate(fd, 0, (off_t)off, (off_t)len);
	while (r < 0 && errno == EINTR);
	return r < 0 ? SYS_ERR() : 0;
}

int sys_fstat_size(int fd, uint64_t *size, int *is_regular)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return SYS_ERR();
	*size = (uint64_t)st.st_size;
	*is_regular = S_ISREG(st.st_mode);
	return 0;
}

int sys_get_seals(int fd)
{
	int r = fcntl(fd, F_GET_SEALS);
	return r < 0 ? SYS_ERR() : r;
}

int sys_add_seals(int fd, int seals)
{
	return fcntl(fd, F_ADD_SEALS, seals) < 0 ? SYS_ERR() : 0;
}

int sys_dup_cloexec(int fd)
{
	int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return r < 0 ? SYS_ERR() : r;
}

int sys_set_cloexec(int fd, int on)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0)
		return SYS_ERR();
	fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
	return fcntl(fd, F_SETFD, fl) < 0 ? SYS_ERR() : 0;
}

int sys_mmap(void **out, size_t len, int prot, int flags, int fd, uint64_t off)
{
	void *p = mmap(NULL, len, prot, flags, fd, (off_t)off);

	if (p == MAP_FAILED)
		return SYS_ERR();
	*out = p;
	return 0;
}

int sys_close(int fd)
{
	/* Linux releases the fd even when close fails with EINTR: never retry. */
	return close(fd) < 0 ? SYS_ERR() : 0;
}

/*
 * Shared words are never FUTEX_PRIVATE (workers are other processes); words
 * in process-private memory may be.
 */
int sys_futex_wait(uint32_t *word, uint32_t val, int64_t timeout_ns, int private_)
{
	struct timespec ts, *tp = NULL;
	int op = FUTEX_WAIT | (private_ ? FUTEX_PRIVATE_FLAG : 0);

	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tp = &ts;
	}
	if (syscall(SYS_futex, word, op, val, tp, NULL, 0) < 0)
		return SYS_ERR();
	return 0;
}

int sys_futex_wake(uint32_t *word, int n, int private_)
{
	int op = FUTEX_WAKE | (private_ ? FUTEX_PRIVATE_FLAG : 0);
	long r = syscall(SYS_futex, word, op, n, NULL, NULL, 0);

	return r < 0 ? SYS_ERR() : (int)r;
}

int sys_pidfd_open(pid_t pid)
{
	long r = syscall(SYS_pidfd_open, pid, 0);
	return r < 0 ? SYS_ERR() : (int)r;
}

int sys_pidfd_send_signal(int pidfd, int sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? SYS_ERR() : 0;
}

int sys_pidfd_getfd(int pidfd, int fd)
{
	long r = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	return r < 0 ? SYS_ERR() : (int)r;
}

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int probe_pidfd(void)
{
	siginfo_t si;
	int fd = sys_pidfd_open(getpid()), ok;

	if (fd < 0)
		return 0;
	/* Ourselves: signal 0 only checks; we are not our own child, so a
	 * kernel that knows P_PIDFD says ECHILD (EINVAL: it does not). */
	memset(&si, 0, sizeof(si));
	ok = sys_pidfd_send_signal(fd, 0) == 0 &&
	     waitid(P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) < 0 && errno == ECHILD;
	sys_close(fd);
	return ok;
}

int sys_pidfd_usable(void)
{
	/* 0 unknown, 1 usable, 2 not.  Racing first calls probe twice: same
	 * answer.  relaxed: the value is all there is to publish. */
	static _Atomic int state;
	int s = atomic_load_explicit(&state, memory_order_relaxed);

	if (!s) {
		s = probe_pidfd() ? 1 : 2;
		atomic_store_explicit(&state, s, memory_order_relaxed);
	}
	return s == 1;
}

int sys_child_state(pid_t pid)
{
	siginfo_t si;
	int r;

	if (pid <= 0)
		return -ECHILD;
	memset(&si, 0, sizeof(si));
	do
		r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT | __WALL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return SYS_ERR();
	return si.si_pid == 0;
}

int sys_kill_child(pid_t pid, int sig)
{
	int r = sys_child_state(pid);

	if (r <= 0)
		return r < 0 ? r : 0; /* gone, or a zombie: nothing to signal */
	return kill(pid, sig) < 0 ? SYS_ERR() : 0;
}

uint64_t sys_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t sys_look_ns(void)
{
	static _Atomic uint64_t cached;
	uint64_t v = atomic_load_explicit(&cached, memory_order_relaxed);
	struct timespec res;

	/* relaxed: every thread computes the same value; a race only
	 * computes it twice. */
	if (v)
		return v;
	if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0)
		v = (uint64_t)res.tv_sec * 1000000000u + (uint64_t)res.tv_nsec;
	if (!v || v > 10000000u)
		v = 10000000u; /* HZ=100, the longest tick in use */
	v += v / 4;
	if (v < 1000000u)
		v = 1000000u;
	atomic_store_explicit(&cached, v, memory_order_relaxed);
	return v;
}

int sys_wake_pipe(int *rfd, int *wfd)
{
	int pp[2];

	if (pipe2(pp, O_NONBLOCK | O_CLOEXEC) < 0)
		return SYS_ERR();
	*rfd = pp[0];
	*wfd = pp[1];
	return 0;
}

void sys_poke(int fd)
{
	char byte = 1;

	if (write(fd, &byte, 1) < 0) {
		/* EAGAIN: the pipe is full, a wake-up is pending already. */
	}
}

int sys_check_pipe_w(int fd)
{
	struct stat st;
	int fl;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
		return -EBADF;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) != O_WRONLY)
		return -EBADF;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -EBADF;
	return 0;
}

int sys_poll_in(int fd, int fd2, int64_t timeout_ns)
{
	struct pollfd pf[2] = {
		{ .fd = fd, .events = POLLIN },
		{ .fd = fd2, .events = POLLIN },
	};
	struct timespec ts = { (time_t)(timeout_ns / 1000000000),
			       (long)(timeout_ns % 1000000000) };
	int n = ppoll(pf, fd2 >= 0 ? 2 : 1, timeout_ns < 0 ? NULL : &ts, NULL);

	return n < 0 ? SYS_ERR() : n == 0 ? -ETIMEDOUT : 0;
}

void sys_drain(int fd)
{
	char buf[64];
	ssize_t n;

	/* A short read emptied the pipe: reading on to EAGAIN would cost
	 * every wake-up a second system call.  A byte written after it stays
	 * for the next poll, as one written after an EAGAIN would. */
	do
		n = read(fd, buf, sizeof(buf));
	while (n == (ssize_t)sizeof(buf) || (n < 0 && errno == EINTR));
}

int sys_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return SYS_ERR();
		if (w == 0)
			return -EPIPE;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int sys_leave_cpu(void)
{
	cpu_set_t all, other;
	int cpu = sched_getcpu();

	if (cpu < 0)
		return -errno;
	if (sched_getaffinity(0, sizeof(all), &all) < 0)
		return -errno;
	other = all;
	CPU_CLR(cpu, &other);
	if (!CPU_COUNT(&other))
		return -EAGAIN;
	/* Leaving `cpu` out of the mask migrates us before the call returns;
	 * the whole mask back does not move us again. */
	if (sched_setaffinity(0, sizeof(other), &other) < 0)
		return -errno;
	return sched_setaffinity(0, sizeof(all), &all) < 0 ? -errno : 0;
}

unsigned sys_cpus(void)
{
	cpu_set_t set;
	long n;

	/* The mask first: a pool started under taskset, or in a container
	 * given a cpuset, runs on those CPUs only. */
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

int sys_voluntary_switches(uint64_t *n)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru) < 0)
		return -errno;
	*n = (uint64_t)ru.ru_nvcsw;
	return 0;
}
