/* SPDX-License-Identifier: MIT */
/*
 * Passing an arena (and a pool's channel) to other processes: across exec
 * through an inherited fd named in ARENA_FD, or to an unrelated process over
 * an AF_UNIX socket with SCM_RIGHTS.  The receiving side trusts nothing: it
 * checks the fd count, that each fd is a memfd, the seals and the images
 * before it keeps anything, and it closes every fd it got when it refuses.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena_internal.h"
#include "channel.h"

extern char **environ;

#define ENV_NAME "ARENA_FD"
#define ENV_PREFIX ENV_NAME "="

/* "ARENA_FD=" + two ints and a comma + NUL. */
#define ENV_MAX (sizeof(ENV_PREFIX) + 2 * 11 + 1)

/* ---- the message arena_send() writes ------------------------------------ */

#define PASS_MAGIC 0x5341504e45524141ull   /* "AARENPAS" little-endian */
#define PASS_VERSION 1u
#define PASS_KIND_NONE 0u
#define PASS_KIND_ARENA 1u
#define PASS_KIND_CHANNEL 2u
/*
 * Room for more fds than any valid message carries: a peer that sends extra
 * fds gets them installed here (and closed by us) instead of truncated, so
 * "too many fds" is told apart from a short control buffer.  More than this
 * sets MSG_CTRUNC; the kernel then drops the excess itself.
 */
#define PASS_MAX_RECV_FDS 16

struct pass_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t nfds;           /* 1 or 2, as many as SCM_RIGHTS carries */
	uint32_t kinds[2];       /* PASS_KIND_* of each fd, in order */
	uint64_t arena_size;     /* what the receiver must find */
};
_Static_assert(sizeof(struct pass_hdr) == 32, "pass message layout");

/* ---- across exec --------------------------------------------------------- */

static int fds_of(const struct arena *a, const struct arena_pool *p, int *afd, int *cfd)
{
	if (!a)
		return -EINVAL;
	*afd = arena_fd(a);
	*cfd = p ? arena_pool_channel_fd(p) : -1;
	if (*afd < 0 || (p && *cfd < 0))
		return -EINVAL;
	return 0;
}

static int format_env(char *buf, size_t len, int afd, int cfd)
{
	int n = cfd >= 0 ? snprintf(buf, len, ENV_PREFIX "%d,%d", afd, cfd)
			 : snprintf(buf, len, ENV_PREFIX "%d", afd);

	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int arena_export_env(const struct arena *a, const struct arena_pool *p,
		     char *env_buf, size_t env_len)
{
	int afd, cfd, r;

	if (!env_buf)
		return -EINVAL;
	r = fds_of(a, p, &afd, &cfd);
	if (r < 0)
		return r;
	/* Format first: a buffer too small changes nothing. */
	r = format_env(env_buf, env_len, afd, cfd);
	if (r < 0)
		return r;
	r = sys_set_cloexec(afd, 0);
	if (r == 0 && cfd >= 0)
		r = sys_set_cloexec(cfd, 0);
	return r;
}

int arena_spawn(pid_t *pid, const char *path, char *const argv[],
		char *const envp[], const struct arena *a,
		const struct arena_pool *p)
{
	posix_spawn_file_actions_t fa;
	char fdenv[ENV_MAX];
	char *const *src = envp ? envp : environ;
	char **env;
	size_t n = 0, k, j = 0;
	int afd, cfd, r;

	if (!path || !argv)
		return -EINVAL;
	r = fds_of(a, p, &afd, &cfd);
	if (r == 0)
		r = format_env(fdenv, sizeof(fdenv), afd, cfd);
	if (r < 0)
		return r;
	while (src && src[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return -ENOMEM;
	/* A stale ARENA_FD inherited from our own parent would shadow ours. */
	for (k = 0; k < n; k++)
		if (strncmp(src[k], ENV_PREFIX, sizeof(ENV_PREFIX) - 1) != 0)
			env[j++] = src[k];
	env[j] = fdenv;
	r = posix_spawn_file_actions_init(&fa);
	if (r == 0) {
		/*
		 * dup2 onto itself clears FD_CLOEXEC in the child only (glibc
		 * >= 2.29): these fds cross the exec, every other libarena fd
		 * stays close-on-exec, and the parent's flags do not change, so
		 * threads spawning at the same time leak nothing to each other.
		 */
		r = posix_spawn_file_actions_adddup2(&fa, afd, afd);
		if (r == 0 && cfd >= 0)
			r = posix_spawn_file_actions_adddup2(&fa, cfd, cfd);
		if (r == 0)
			r = posix_spawn(pid, path, &fa, NULL, argv, env);
		posix_spawn_file_actions_destroy(&fa);
	}
	free(env);
	return -r;
}

/*
 * Whether an unsealed fd at least starts like an arena, to tell "unsealed
 * arena" (-EPERM) from "not an arena" (-EBADMSG).  pread, never mmap: its
 * owner may shrink an unsealed file, and a mapping would then SIGBUS.
 */
static int has_arena_magic(int fd)
{
	uint64_t magic = 0;

	return pread(fd, &magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
	       magic == ARENA_MAGIC;
}

/* A non-negative decimal int, digits only; *s moves past it. */
static int parse_fd(const char **s, int *fd)
{
	const char *p = *s;
	long v = 0;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (*p - '0');
		if (v > INT_MAX)
			return -EINVAL;
		p++;
	}
	*fd = (int)v;
	*s = p;
	return 0;
}

static int parse_spec(const char *spec, int *afd, int *cfd)
{
	int r;

	if (!strncmp(spec, ENV_PREFIX, sizeof(ENV_PREFIX) - 1))
		spec += sizeof(ENV_PREFIX) - 1;
	*cfd = -1;
	r = parse_fd(&spec, afd);
	if (r == 0 && *spec == ',') {
		spec++;
		r = parse_fd(&spec, cfd);
	}
	if (r == 0 && (*spec || *afd == *cfd))
		r = -EINVAL;
	return r;
}

/* Maps fd as a channel to check it, and checks that it serves arena a. */
static int check_channel(int fd, const struct arena *a)
{
	struct chan c;
	int r;

	memset(&c, 0, sizeof(c));
	r = chan_map(&c, fd, 0);
	if (r < 0)
		return r == -EINVAL ? -EBADMSG : r; /* not a regular file */
	/* The header is read-only after creation; one load, then compare. */
	if (c.g->hdr.arena_size != arena_size(a))
		r = -EBADMSG;
	chan_unmap(&c);
	return r;
}

int arena_attach_env(struct arena **out, int *channel_fd, const char *spec)
{
	struct arena *a = NULL;
	int afd, cfd, r;

	if (!out)
		return -EINVAL;
	if (channel_fd)
		*channel_fd = -1;
	if (!spec) {
		spec = getenv(ENV_NAME);
		if (!spec)
			return -ENOENT;
	}
	r = parse_spec(spec, &afd, &cfd);
	if (r < 0)
		return r;
	/*
	 * Validate everything before closing anything: on failure the fds
	 * named in the spec are left alone, since they may not be ours.
	 */
	r = arena_open_fd(&a, afd, 0);
	if (r == -EPERM && !has_arena_magic(afd))
		r = -EBADMSG; /* not an arena at all (a channel, say) */
	if (r < 0)
		return r;
	if (cfd >= 0) {
		r = check_channel(cfd, a);
		if (r < 0) {
			arena_close(a);
			return r;
		}
	}
	/* The arena keeps its own close-on-exec duplicate. */
	sys_close(afd);
	if (cfd >= 0) {
		if (channel_fd) {
			r = sys_set_cloexec(cfd, 1);
			if (r < 0) {
				arena_close(a);
				return r;
			}
			*channel_fd = cfd;
		} else {
			sys_close(cfd);
		}
	}
	*out = a;
	return 0;
}

/* ---- over a socket ------------------------------------------------------- */

int arena_send(int sock, const struct arena *a, const struct arena_pool *p)
{
	struct pass_hdr h;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cm;
	int fds[2], nfds, r;
	size_t done = 0;
	ssize_t n;

	if (sock < 0)
		return -EBADF;
	r = fds_of(a, p, &fds[0], &fds[1]);
	if (r < 0)
		return r;
	if (!arena_is_sealed(a))
		return -EINVAL; /* the receiver would refuse it (-EPERM) */
	nfds = p ? 2 : 1;
	memset(&h, 0, sizeof(h));
	h.magic = PASS_MAGIC;
	h.version = PASS_VERSION;
	h.nfds = (uint32_t)nfds;
	h.kinds[0] = PASS_KIND_ARENA;
	h.kinds[1] = p ? PASS_KIND_CHANNEL : PASS_KIND_NONE;
	h.arena_size = arena_size(a);

	memset(&ctl, 0, sizeof(ctl));
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = &h;
	iov.iov_len = sizeof(h);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));

	/* The fds travel with the first byte; a stream socket may take the
	 * rest of the header in later writes. */
	while (done < sizeof(h)) {
		iov.iov_base = (char *)&h + done;
		iov.iov_len = sizeof(h) - done;
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return SYS_ERR();
		if (n == 0)
			return -EPIPE;
		done += (size_t)n;
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
	}
	return 0;
}

/* Waits until sock is readable; -ETIMEDOUT after the deadline. */
static int wait_readable(int sock, int64_t timeout_ns, uint64_t deadline)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	int ms, r;

	for (;;) {
		if (timeout_ns < 0) {
			ms = -1;
		} else if (timeout_ns == 0) {
			ms = 0;
		} else {
			uint64_t now = sys_now_ns(), left;

			if (now >= deadline)
				return -ETIMEDOUT;
			left = deadline - now;
			/* round up: never wake before the deadline */
			ms = left / 1000000 >= INT_MAX ? INT_MAX : (int)((left + 999999) / 1000000);
		}
		r = poll(&pfd, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return SYS_ERR();
		if (r == 0) {
			if (timeout_ns > 0 && sys_now_ns() < deadline)
				continue;
			return -ETIMEDOUT;
		}
		if (pfd.revents & POLLNVAL)
			return -EBADF;
		return 0; /* readable, hung up or error: recvmsg tells which */
	}
}

struct recv_state {
	int fds[PASS_MAX_RECV_FDS];
	int nfds;
	int extra;       /* fds beyond PASS_MAX_RECV_FDS or in a second message */
	int truncated;   /* MSG_CTRUNC */
};

/* Takes every SCM_RIGHTS fd out of msg (so none can leak). */
static void collect_fds(struct recv_state *st, struct msghdr *msg)
{
	struct cmsghdr *cm;

	if (msg->msg_flags & MSG_CTRUNC)
		st->truncated = 1;
	for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		size_t k, n;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(0))
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < n; k++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int), sizeof(fd));
			if (st->nfds < PASS_MAX_RECV_FDS)
				st->fds[st->nfds++] = fd;
			else {
				sys_close(fd);
				st->extra = 1;
			}
		}
	}
}

static void close_all(struct recv_state *st)
{
	int i;

	for (i = 0; i < st->nfds; i++)
		sys_close(st->fds[i]);
	st->nfds = 0;
}

/*
 * Reads the header: one datagram/record on datagram and seqpacket sockets;
 * on a stream socket exactly sizeof(*h) bytes, the fds arriving with the
 * first.  0 or a short message, -ECONNRESET (hang-up), -EBADMSG, -ETIMEDOUT.
 */
static int read_msg(int sock, struct pass_hdr *h, struct recv_state *st,
		    int64_t timeout_ns, uint64_t deadline)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(PASS_MAX_RECV_FDS * sizeof(int))];
	} ctl;
	char buf[sizeof(*h) + 1];
	struct msghdr msg;
	struct iovec iov;
	socklen_t tl = sizeof(int);
	int type, stream, r;
	size_t done = 0;
	ssize_t n;

	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
		return SYS_ERR();
	stream = type == SOCK_STREAM;
	while (done < sizeof(*h)) {
		r = wait_readable(sock, timeout_ns, deadline);
		if (r < 0)
			return r;
		memset(&msg, 0, sizeof(msg));
		/* A record one byte longer than the header is refused; on a
		 * stream, never read into the next message. */
		iov.iov_base = buf + done;
		iov.iov_len = (stream ? sizeof(*h) : sizeof(buf)) - done;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue; /* another reader took it, or a signal */
		if (n < 0)
			return SYS_ERR();
		if (done && msg.msg_controllen)
			st->extra = 1; /* fds after the first byte: not ours */
		collect_fds(st, &msg);
		if (n == 0)
			return type == SOCK_DGRAM && !done ? -EBADMSG : -ECONNRESET;
		done += (size_t)n;
		if (!stream) {
			if ((msg.msg_flags & MSG_TRUNC) || done != sizeof(*h))
				return -EBADMSG;
		}
	}
	memcpy(h, buf, sizeof(*h));
	return 0;
}

/* 1 when fd is a memfd: a regular shmem file that knows seals, named so. */
static int is_memfd(int fd)
{
	char path[64], name[16];
	struct stat sb;
	ssize_t n;

	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
		return 0;
	if (sys_get_seals(fd) < 0)
		return 0;
	/* tmpfs files know seals too: the link name tells a memfd apart.
	 * Without /proc the two checks above must do. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, name, sizeof(name));
	if (n < 0)
		return errno == ENOENT ? 1 : 0;
	return n >= 7 && !memcmp(name, "/memfd:", 7);
}

int arena_recv(int sock, struct arena **out, int *channel_fd, int64_t timeout_ns)
{
	uint64_t deadline = timeout_ns > 0 ? sys_now_ns() + (uint64_t)timeout_ns : 0;
	struct recv_state st;
	struct arena *a = NULL;
	struct pass_hdr h;
	int i, r;

	if (channel_fd)
		*channel_fd = -1;
	if (!out)
		return -EINVAL;
	if (sock < 0)
		return -EBADF;
	memset(&st, 0, sizeof(st));
	memset(&h, 0, sizeof(h));
	r = read_msg(sock, &h, &st, timeout_ns, deadline);
	if (r == 0 && (st.truncated || st.extra))
		r = -EBADMSG;
	if (r == 0 && (h.magic != PASS_MAGIC || h.nfds < 1 || h.nfds > 2))
		r = -EBADMSG;
	if (r == 0 && h.version != PASS_VERSION)
		r = -EPROTONOSUPPORT;
	if (r == 0 && (h.kinds[0] != PASS_KIND_ARENA ||
		       h.kinds[1] != (h.nfds == 2 ? PASS_KIND_CHANNEL : PASS_KIND_NONE)))
		r = -EBADMSG;
	if (r == 0 && (uint32_t)st.nfds != h.nfds)
		r = -EBADMSG;
	for (i = 0; r == 0 && i < st.nfds; i++)
		if (!is_memfd(st.fds[i]))
			r = -EBADMSG;
	if (r == 0) {
		r = arena_open_fd(&a, st.fds[0], 0);
		if (r == -EINVAL || r == -EBADF)
			r = -EBADMSG;
		if (r == -EPERM && !has_arena_magic(st.fds[0]))
			r = -EBADMSG; /* not an arena at all (a channel, say) */
	}
	if (r == 0 && arena_size(a) != h.arena_size)
		r = -EBADMSG;
	if (r == 0 && st.nfds == 2)
		r = check_channel(st.fds[1], a);
	if (r < 0) {
		arena_close(a);
		close_all(&st);
		return r;
	}
	/* The arena keeps its own duplicate. */
	sys_close(st.fds[0]);
	if (st.nfds == 2) {
		/* Close-on-exec already: MSG_CMSG_CLOEXEC. */
		if (channel_fd)
			*channel_fd = st.fds[1];
		else
			sys_close(st.fds[1]);
	}
	*out = a;
	return 0;
}
