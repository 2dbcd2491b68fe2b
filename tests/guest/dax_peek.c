/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest-side test helper: read or write bytes of a device-DAX character device, which has no
 * read(2) or write(2), only mmap(2) in units of its alignment (2 MiB here).
 *   dax_peek DEV OFFSET LENGTH        the bytes to stdout
 *   dax_peek DEV OFFSET LENGTH -w     stdin's first LENGTH bytes written there (msync'ed)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DAX_ALIGN (2ul << 20)

int main(int argc, char **argv)
{
	unsigned long off, len, base, span;
	int fd, writing;
	char *p;

	if (argc < 4 || argc > 5 || (argc == 5 && strcmp(argv[4], "-w"))) {
		fputs("usage: dax_peek DEV OFFSET LENGTH [-w]\n", stderr);
		return 2;
	}
	writing = argc == 5;
	off = strtoul(argv[2], NULL, 0);
	len = strtoul(argv[3], NULL, 0);
	base = off & ~(DAX_ALIGN - 1);
	span = ((off + len + DAX_ALIGN - 1) & ~(DAX_ALIGN - 1)) - base;
	fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)base);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	if (writing) {
		if (fread(p + (off - base), 1, len, stdin) != len) {
			fprintf(stderr, "dax_peek: stdin ended before %lu bytes\n", len);
			return 1;
		}
		/* a device-DAX file has no fsync (msync says EINVAL): the stores went to the
		 * device's memory itself, which here is the host's backing */
		if (msync(p, span, MS_SYNC) < 0 && errno != EINVAL) {
			perror("msync");
			return 1;
		}
	} else if (fwrite(p + (off - base), 1, len, stdout) != len) {
		perror("stdout");
		return 1;
	}
	return 0;
}
