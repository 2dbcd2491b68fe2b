/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A file kept current off the event loop: each new content replaces the file whole (a
 * temporary beside it, then rename), so a reader sees the old text or the new, never half;
 * a newer content queued supersedes one not yet written. Not made durable (no fsync): for
 * what is rebuilt at every start anyway, like the metrics file node_exporter reads.
 */
#ifndef BROKERD_TEXTFILE_H
#define BROKERD_TEXTFILE_H

#include <stddef.h>

struct textfile;

/* Its directory is opened now, once: the file is always written there, whatever happens to
 * the name of the directory afterwards. -errno if it cannot be. */
int textfile_start(const char *path, struct textfile **ret);
/* Writes what is queued, then stops. */
void textfile_stop(struct textfile *t);
/* Queue text (taken; malloc'd) to be the file's next content. */
void textfile_put(struct textfile *t, char *text, size_t len);
/* How many writes failed, and the last one's errno (0: none). */
unsigned textfile_failures(struct textfile *t, int *ret_last);

#endif
