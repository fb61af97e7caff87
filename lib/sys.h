/* SPDX-License-Identifier: MIT */
/*
 * Syscall wrappers: the one place where -1/errno becomes -errno.  Everything
 * else in the library returns the negative errno these give it.
 */
#ifndef ARENA_SYS_H
#define ARENA_SYS_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define ARENA_HIDDEN __attribute__((visibility("hidden")))

/* -errno of the last failed libc call. */
#define SYS_ERR() (-errno)

ARENA_HIDDEN int sys_memfd_create(const char *name, unsigned flags);
ARENA_HIDDEN int sys_ftruncate(int fd, uint64_t size);
ARENA_HIDDEN int sys_fallocate(int fd, uint64_t off, uint64_t len);
ARENA_HIDDEN int sys_fstat_size(int fd, uint64_t *size, int *is_regular);
ARENA_HIDDEN int sys_get_seals(int fd);
ARENA_HIDDEN int sys_add_seals(int fd, int seals);
ARENA_HIDDEN int sys_dup_cloexec(int fd);
ARENA_HIDDEN int sys_mmap(void **out, size_t len, int prot, int flags, int fd, uint64_t off);
ARENA_HIDDEN int sys_close(int fd);
ARENA_HIDDEN int sys_set_cloexec(int fd, int on);

ARENA_HIDDEN int sys_futex_wait(uint32_t *word, uint32_t val, int64_t timeout_ns, int private_);
ARENA_HIDDEN int sys_futex_wake(uint32_t *word, int n, int private_);

ARENA_HIDDEN int sys_pidfd_open(pid_t pid);
ARENA_HIDDEN int sys_pidfd_send_signal(int pidfd, int sig);
ARENA_HIDDEN int sys_pidfd_getfd(int pidfd, int fd);
/* 1 when pidfd_open, pidfd_send_signal and waitid(P_PIDFD) all work here;
 * 0 when one answers ENOSYS/EPERM/EINVAL (Linux < 5.4, a seccomp profile,
 * valgrind <= 3.21).  Probed once per process. */
ARENA_HIDDEN int sys_pidfd_usable(void);

/* What waitid(P_PID, pid, WEXITED|WNOHANG|WNOWAIT) says of a child, without
 * reaping it: 1 alive, 0 exited (a zombie), -ECHILD not (or no longer) our
 * child: reaped already, by us, by the kernel (SIGCHLD ignored) or by
 * another thread's waitpid(-1).  pid <= 0: -ECHILD. */
ARENA_HIDDEN int sys_child_state(pid_t pid);
/* kill(pid, sig) only while pid is our live child: a child we have not
 * reaped keeps its pid, so the signal cannot reach a process that reused
 * it.  (With SIGCHLD ignored the kernel reaps by itself: the window between
 * the check and the kill is then the only one.)  0 or -errno. */
ARENA_HIDDEN int sys_kill_child(pid_t pid, int sig);

/* CLOCK_MONOTONIC in nanoseconds (vDSO: no system call). */
ARENA_HIDDEN uint64_t sys_now_ns(void);
/* Moves the calling thread off the CPU it runs on, to another CPU its
 * affinity mask allows, and gives the mask back as it was: a nudge, not a
 * pin (the scheduler's next placement may undo it).  Returns 0, -EAGAIN
 * when the mask has no other CPU, or -errno; after a failed restore the
 * mask stays without the CPU we left. */
ARENA_HIDDEN int sys_leave_cpu(void);

/* The CPUs this thread may run on (its affinity mask; the online CPUs
 * where the mask cannot be read), at least 1. */
ARENA_HIDDEN unsigned sys_cpus(void);
/* The calling thread's voluntary context switches so far: its sleeps (a
 * futex, I/O, a lock), not the scheduler's preemptions nor its yields. */
ARENA_HIDDEN int sys_voluntary_switches(uint64_t *n);

/*
 * How often a sleeping reaper looks by itself: a quarter more than the
 * kernel's tick (CLOCK_MONOTONIC_COARSE's resolution: 4 ms at HZ=250, 1 ms at
 * HZ=1000), at least 1 ms.  A timer that expires before the next tick has
 * to reprogram the timer hardware when armed and again when cancelled; in a
 * VM each is an exit to the hypervisor.  Measured on a 2-vCPU VM (HZ=250):
 * a bare futex sleep cost the sleeper 7.2 us of CPU without a timeout, 12.5
 * us with a 1 ms one and 7.4 us with a 10 ms one; a pool's reaper sleep 16.6
 * us with a 1 ms look and 11.2 us with 5 ms or none (bench/parent-cost 2 10
 * 30000 20).  A timer later than the next tick runs from the tick.
 */
ARENA_HIDDEN uint64_t sys_look_ns(void);

/* A wake pipe, non-blocking both ways (a full pipe already holds a wake-up,
 * so a waker's write may fail harmlessly, and the sleeper drains it without
 * blocking) and close-on-exec.  0 or -errno. */
ARENA_HIDDEN int sys_wake_pipe(int *rfd, int *wfd);

/* Writes one byte to a non-blocking wake pipe; a full pipe (EAGAIN) is a
 * wake-up already pending, so nothing is reported. */
ARENA_HIDDEN void sys_poke(int fd);

/* A worker's wake fd from its environment: 0 when fd is the write end of
 * a pipe, made non-blocking (a full pipe must not stop a worker);
 * -EBADF otherwise. */
ARENA_HIDDEN int sys_check_pipe_w(int fd);

/* poll() for input on fd, and on fd2 unless it is -1, for at most
 * timeout_ns (< 0: no limit).  0 when one is readable, -ETIMEDOUT, -EINTR. */
ARENA_HIDDEN int sys_poll_in(int fd, int fd2, int64_t timeout_ns);

/* Reads a non-blocking wake pipe empty. */
ARENA_HIDDEN void sys_drain(int fd);

/* Full write/read loops; EINTR retried.  Return 0 or -errno (-EPIPE short). */
ARENA_HIDDEN int sys_write_all(int fd, const void *buf, size_t len);

#endif
