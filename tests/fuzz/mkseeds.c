/* SPDX-License-Identifier: MIT */
/* Writes the seed corpora (checked in under tests/fuzz/corpus/) into DIR:
 *   mkseeds DIR     (then DIR/<harness>/seed-*) */
#define _GNU_SOURCE
#include <sys/socket.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "channel.h"

static const char *dir;

static void put(const char *h, const char *name, uint8_t mode, const void *b, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, h);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, h, name);
	f = fopen(path, "wb");
	if (!f)
		abort();
	if (mode != 0xff)
		fputc(mode, f);
	fwrite(b, 1, len, f);
	fclose(f);
}

static size_t image(const struct arena *a, uint8_t *buf, size_t cap)
{
	ssize_t n = pread(arena_fd(a), buf, cap, 0);

	return n > 0 ? (size_t)n : 0;
}

int main(int argc, char **argv)
{
	static uint8_t img[1 << 16], tmp[1 << 16];
	struct arena *a = fuzz_arena();
	struct arena_pool *p;
	struct arena_pool_opts o = { .workers = 1, .depth = 4, .result_bytes = 4096 };
	uint64_t hdr_sq = 0, hdr_sqd = 4;   /* the SQ's place (fuzz_channel's pool) */
	size_t n, m;
	int sv[2], cfd;
	unsigned mode;

	if (argc != 2)
		return 2;
	dir = argv[1];
	mkdir(dir, 0755);
	/* image: compact (header + bytes from 4096) and raw; every open mode */
	n = image(a, img, sizeof(img));
	memcpy(tmp, img, 128);
	memcpy(tmp + 128, img + 4096, n - 4096);
	for (mode = 0; mode < 4; mode++) {
		char name[32];

		snprintf(name, sizeof(name), "seed-compact-%u", mode);
		put("image", name, (uint8_t)mode, tmp, 128 + n - 4096);
	}
	put("image", "seed-raw-sealed", 5, img, n);
	put("image", "seed-raw-file", 6, img, n);
	/* env */
	put("env", "seed-arena", 0xff, "ARENA_FD=200", 12);
	put("env", "seed-both", 0xff, "ARENA_FD=200,201", 16);
	put("env", "seed-bare", 0xff, "200,201", 7);
	put("env", "seed-other-channel", 0xff, "ARENA_FD=200,205", 16);
	put("env", "seed-unsealed", 0xff, "ARENA_FD=202", 12);
	put("env", "seed-pipe-dir", 0xff, "ARENA_FD=203,204", 16);
	/* recv: what arena_send writes, with its fds and others */
	if (arena_pool_create(&p, a, &o) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	if (arena_send(sv[0], a, p) < 0)
		abort();
	{
		struct arena *b = NULL;
		uint8_t hdr[4 + 32];

		/* the header bytes, peeked (the fds stay for arena_recv) */
		if (recv(sv[1], hdr + 4, 32, MSG_PEEK | MSG_WAITALL) != 32)
			abort();
		if (arena_recv(sv[1], &b, &cfd, 1000000000) < 0)
			abort();
		arena_close(b);
		close(cfd);
		hdr[0] = 2, hdr[1] = 0, hdr[2] = 2, hdr[3] = 0;
		put("recv", "seed-arena-channel", 0xff, hdr, 4 + 32);
		hdr[0] = 2, hdr[1] = 2, hdr[2] = 0;
		put("recv", "seed-swapped", 0xff, hdr, 4 + 32);
		hdr[0] = 1, hdr[1] = 0;
		put("recv", "seed-one-fd", 0xff, hdr, 4 + 32);
		hdr[0] = 3, hdr[1] = 0, hdr[2] = 2, hdr[3] = 3;
		put("recv", "seed-three", 0xff, hdr, 4 + 32);
		hdr[0] = 2, hdr[1] = 1, hdr[2] = 7;
		put("recv", "seed-unsealed", 0xff, hdr, 4 + 32);
		hdr[0] = 6, hdr[1] = 0, hdr[2] = 2;
		put("recv", "seed-no-channel-wanted", 0xff, hdr, 4 + 32);
	}
	close(sv[0]);
	close(sv[1]);
	/* inspect: a live channel and an arena */
	m = (size_t)pread(arena_pool_channel_fd(p), tmp, sizeof(tmp), 0);
	put("inspect", "seed-channel", 0, tmp, m);
	put("inspect", "seed-channel-json", 1, tmp, m);
	put("inspect", "seed-channel-sealed", 2, tmp, m);
	hdr_sq = ((const struct chan_hdr *)tmp)->sq_off;
	hdr_sqd = ((const struct chan_hdr *)tmp)->sq_depth;
	put("inspect", "seed-arena", 0, img, n);
	arena_pool_destroy(p);
	/* channel: no patch, and one of each kind */
	{
		static const uint8_t none[1] = { 0 };
		static const uint8_t cqtail[] = { 0x00, 4, 0, 4, 0xff, 0xff, 0, 0 };
		static const uint8_t cqe[] = { 0x03, 0, 0, 16, 1, 0, 0, 0, 0, 0, 0, 0,
					       2, 0, 0, 0, 0, 0, 0, 0, 0x07, 0, 0, 0 };
		static const uint8_t res[] = { 0x04, 0, 0, 4, 'x', 'y', 'z', 'w', 0x07, 0, 0, 0 };
		static const uint8_t glob[] = { 0x06, 192, 0, 4, 9, 9, 9, 9, 0x07, 0, 0, 0 };
		static const uint8_t inhand[] = { 0x00, 12, 0, 4, 1, 0, 0, 0, 0x07, 0, 0, 0 };

		put("channel", "seed-none", 0, none, 0);
		put("channel", "seed-none-2w-ordered", 3, none, 0);
		put("channel", "seed-cq-tail", 0, cqtail, sizeof(cqtail));
		put("channel", "seed-cqe", 8, cqe, sizeof(cqe));
		put("channel", "seed-result", 8, res, sizeof(res));
		put("channel", "seed-globals", 4, glob, sizeof(glob));
		put("channel", "seed-inhand", 9, inhand, sizeof(inhand));
	}
	/* channel, runs (mode bits 3 and 4): the two extra tasks in one run,
	 * as is and with its count (SQ slot 1: the first four went as one
	 * run; chan_sqe offset 30) scribbled
	 * to 65535 and to 0 */
	{
		static const uint8_t none[1] = { 0 };
		unsigned off = (unsigned)(hdr_sq + (1 % hdr_sqd) * sizeof(struct chan_sqe) + 30);
		uint8_t big[] = { 0x05, (uint8_t)off, (uint8_t)(off >> 8), 2, 0xff, 0xff,
				  0x07, 0, 0, 0 };
		uint8_t zero[] = { 0x05, (uint8_t)off, (uint8_t)(off >> 8), 2, 0, 0, 0x07, 0, 0, 0 };

		put("channel", "seed-runs", 8 | 16, none, 0);
		put("channel", "seed-runs-count-65535", 8 | 16, big, sizeof(big));
		put("channel", "seed-runs-count-0", 8 | 16, zero, sizeof(zero));
	}
	arena_close(a);
	return 0;
}
