/* SPDX-License-Identifier: MIT */
/*
 * Replays inputs through a harness's LLVMFuzzerTestOneInput without
 * libFuzzer (built with the normal compiler, run by the normal suite):
 * every file named, and every file in every directory named.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int one(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f) {
		perror(path);
		return 1;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
		fclose(f);
		free(buf);
		return 1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int i, bad = 0, count = 0;

	for (i = 1; i < argc; i++) {
		struct stat st;
		struct dirent **ents;
		int n, k;

		if (stat(argv[i], &st) < 0)
			continue; /* an optional directory that does not exist */
		if (!S_ISDIR(st.st_mode)) {
			bad |= one(argv[i]);
			count++;
			continue;
		}
		n = scandir(argv[i], &ents, NULL, alphasort);
		for (k = 0; k < n; k++) {
			char path[4096];

			if (ents[k]->d_name[0] != '.') {
				snprintf(path, sizeof(path), "%s/%s", argv[i], ents[k]->d_name);
				bad |= one(path);
				count++;
			}
			free(ents[k]);
		}
		if (n >= 0)
			free(ents);
	}
	fprintf(stderr, "replayed %d inputs\n", count);
	return bad;
}
