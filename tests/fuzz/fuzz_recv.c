/* SPDX-License-Identifier: MIT */
/*
 * A message from a peer through arena_recv over a socketpair, with 0-3 fds
 * of every kind attached.  Input: byte 0 = number of fds (low 2 bits);
 * bytes 1-3 = the kind of each fd (mod 8: sealed arena memfd, unsealed
 * arena memfd, a channel for the arena, a pipe, a directory, a sealed memfd
 * of garbage, a sealed truncated arena image, a channel for another arena);
 * the rest = the bytes sent (the fds ride on the first byte).
 * Properties: no sanitizer report, no hang; on success a usable arena; every
 * fd received is either returned or closed (the fd count is unchanged).
 */
#define _GNU_SOURCE
#include <sys/socket.h>

#include "fuzz_util.h"

static int make_fd(int kind, const struct arena *a)
{
	static const char junk[] = "LLBARENA not really an arena image";
	char img[8192];
	ssize_t n;
	int p[2], fd = -1;

	switch (kind & 7) {
	case 0:
		return dup(arena_fd(a));
	case 1:
	case 6:
		n = pread(arena_fd(a), img, sizeof(img), 0);
		if (n < 0)
			return -1;
		return fuzz_memfd(img, kind == 6 ? (size_t)n / 2 : (size_t)n, kind == 6);
	case 2:
		return fuzz_channel_fd(a, 1, 4);
	case 3:
		if (pipe(p) < 0)
			return -1;
		close(p[1]);
		return p[0];
	case 4:
		return open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	case 5:
		return fuzz_memfd(junk, sizeof(junk), 1);
	default: {
		struct arena *b;

		if (arena_create(&b, NULL) < 0 || arena_seal(b) < 0)
			return -1;
		fd = fuzz_channel_fd(b, 2, 8);
		arena_close(b);
		return fd;
	}
	}
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct arena *a;
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr msg;
	struct iovec iov;
	struct arena *got = NULL;
	int sv[2], fds[3], nfds, i, before, cfd = -2, r;
	uint8_t mode;

	if (size < 4 || size > 4096)
		return 0;
	if (!a)
		a = fuzz_arena();
	mode = data[0];
	nfds = mode & 3;
	before = fuzz_count_fds();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	for (i = 0; i < nfds; i++)
		if ((fds[i] = make_fd(data[1 + i], a)) < 0)
			abort();
	data += 4, size -= 4;
	memset(&msg, 0, sizeof(msg));
	if (size) {
		iov.iov_base = (void *)data;
		iov.iov_len = size;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		if (nfds) {
			struct cmsghdr *cm;

			memset(&ctl, 0, sizeof(ctl));
			msg.msg_control = ctl.buf;
			msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
			cm = CMSG_FIRSTHDR(&msg);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
			memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
		}
		/* 4 KiB fit in the socket buffer: one call, no reader needed. */
		if (sendmsg(sv[0], &msg, MSG_NOSIGNAL) != (ssize_t)size)
			abort();
	}
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	shutdown(sv[0], SHUT_WR);
	r = arena_recv(sv[1], &got, (mode & 4) ? NULL : &cfd, 2000000000ll);
	FUZZ_CHECK(r != -ETIMEDOUT);
	if (r == 0) {
		uint64_t k;

		for (k = 0; k < arena_count(got); k++) {
			const void *p;
			size_t l;

			FUZZ_CHECK(arena_get(got, k, &p, &l) == 0);
			fuzz_touch(p, l);
		}
		arena_close(got);
		if (cfd >= 0)
			close(cfd);
	} else {
		FUZZ_CHECK(got == NULL);
	}
	close(sv[0]);
	close(sv[1]);
	FUZZ_CHECK(fuzz_count_fds() == before);
	return 0;
}
