/* SPDX-License-Identifier: MIT */
/* tail [-n N] [-f]: the last N matching records, then, when following,
 * new ones as they are written, like tail -F: across rotation (the file
 * renamed and a new one created: the old one is read to its end first)
 * and truncation (read again from the start); a file that does not exist
 * yet is waited for. inotify wakes us up; a poll
 * every second covers file systems where it does not (no busy loop). */
#include "mplog-tool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECHECK_MS 1000

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

struct follower {
	const char *path;
	int fd, ino_fd, wd_dir, wd_file;
	dev_t dev;
	ino_t ino;
	off_t offset;
	struct mt_reader rd;
};

static void watch_file(struct follower *f)
{
	if (f->ino_fd < 0)
		return;
	if (f->wd_file >= 0)
		inotify_rm_watch(f->ino_fd, f->wd_file);
	/* The open file itself, wherever it is renamed to. */
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
	f->wd_file = inotify_add_watch(f->ino_fd, proc, IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF |
								 IN_DELETE_SELF);
}

static int open_file(struct follower *f)
{
	int fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (f->fd >= 0)
		close(f->fd);
	f->fd = fd;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->offset = 0;
	mt_reader_reset(&f->rd);
	watch_file(f);
	return 0;
}

/* Read what the file has now. */
static int drain(struct follower *f, struct mt_ctx *c)
{
	if (f->fd < 0)
		return 0; /* waiting for the file to appear */
	for (;;) {
		ssize_t n = mt_reader_fill(&f->rd, f->fd, c);
		if (n <= 0) {
			fflush(c->out);
			return (int)n;
		}
		f->offset += n;
	}
}

/* After a drain: truncated, replaced, or as it was? */
static int check(struct follower *f, struct mt_ctx *c)
{
	struct stat st;
	if (f->fd < 0) {
		int r = open_file(f);
		if (r == 0)
			fprintf(stderr, "mplog: %s: file appeared, following it\n", f->path);
		return r == 0 ? 1 : r == -ENOENT ? 0 : r;
	}
	if (fstat(f->fd, &st) == 0 && st.st_size < f->offset) {
		fprintf(stderr, "mplog: %s: file truncated\n", f->path);
		if (lseek(f->fd, 0, SEEK_SET) < 0)
			return -errno;
		f->offset = 0;
		mt_reader_reset(&f->rd);
		return 1;
	}
	if (stat(f->path, &st) < 0 || (st.st_dev == f->dev && st.st_ino == f->ino))
		return 0; /* gone (a new one may come) or unchanged */
	/* Replaced: what was written to the old file before the new one
	 * appeared comes first. */
	int r = drain(f, c);
	if (r < 0)
		return r;
	if (mt_reader_pending(&f->rd)) {
		fprintf(stderr, "mplog: %s:%llu: incomplete last line of the old file, skipped\n",
			f->rd.name, (unsigned long long)f->rd.lineno + 1);
		c->invalid++;
	}
	r = open_file(f);
	if (r == -ENOENT)
		return 0; /* renamed again meanwhile */
	if (r < 0)
		return r;
	fprintf(stderr, "mplog: %s: file replaced, following the new file\n", f->path);
	return 1;
}

static void watch_dir(struct follower *f)
{
	f->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (f->ino_fd < 0)
		return; /* the periodic check alone */
	char *copy = strdup(f->path);
	if (copy) {
		f->wd_dir = inotify_add_watch(f->ino_fd, dirname(copy),
					      IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
						      IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE);
		free(copy);
	}
}

/* Wait for a change in any of the n files, a signal or the periodic
 * check. 1: stop. */
static int wait_change(struct follower *fs, size_t n, const sigset_t *unblocked)
{
	struct pollfd p[n ? n : 1];
	nfds_t np = 0;
	for (size_t i = 0; i < n; i++)
		if (fs[i].ino_fd >= 0)
			p[np++] = (struct pollfd){.fd = fs[i].ino_fd, .events = POLLIN};
	struct timespec ts = {RECHECK_MS / 1000, 0};
	int r = ppoll(p, np, &ts, unblocked);
	if (stop_requested)
		return 1;
	for (nfds_t i = 0; r > 0 && i < np; i++) {
		char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
		if (p[i].revents)
			while (read(p[i].fd, buf, sizeof buf) > 0)
				; /* what changed does not matter: check() looks */
	}
	return 0;
}

/* Follow the n files at once (stdin is never followed). */
static int follow(struct follower *fs, size_t n, struct mt_ctx *c)
{
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	/* Blocked except inside ppoll(): a stop is never missed. */
	sigprocmask(SIG_BLOCK, &block, &old);
	struct sigaction sa = {.sa_handler = on_stop};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigdelset(&old, SIGINT);
	sigdelset(&old, SIGTERM);
	for (size_t i = 0; i < n; i++) {
		watch_dir(&fs[i]);
		watch_file(&fs[i]);
	}
	int ret = 0;
	while (ret >= 0) {
		for (size_t i = 0; i < n && ret >= 0; i++) {
			do {
				ret = drain(&fs[i], c);
				if (ret >= 0)
					ret = check(&fs[i], c);
			} while (ret == 1);
		}
		if (ret < 0 || wait_change(fs, n, &old))
			break;
	}
	for (size_t i = 0; i < n; i++)
		if (fs[i].ino_fd >= 0)
			close(fs[i].ino_fd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return ret < 0 ? ret : 0;
}

/* The last n records of one file (or stdin); keeps it open to follow. */
static int tail_one(struct mt_ctx *c, struct follower *f, size_t n, bool follow_it)
{
	bool is_stdin = !strcmp(f->path, "-");
	int ret = mt_reader_init(&f->rd, is_stdin ? "<stdin>" : f->path);
	if (ret < 0)
		return ret;
	if (is_stdin) {
		f->fd = STDIN_FILENO;
	} else if ((ret = open_file(f)) == -ENOENT && follow_it) {
		/* As tail -F: it may be created (or rotated in) soon. */
		fprintf(stderr, "mplog: %s: no such file yet, waiting for it\n", f->path);
		ret = 0;
	} else if (ret < 0) {
		return ret;
	}
	if ((ret = mt_ctx_ring_start(c, n)) == 0)
		ret = drain(f, c);
	/* Not following (or a pipe): a partial last line is all there is. */
	if (ret == 0 && (!follow_it || is_stdin))
		ret = mt_reader_finish(&f->rd, c);
	if (ret == 0)
		ret = mt_ctx_ring_flush(c);
	fflush(c->out);
	return ret;
}

int mt_tail(struct mt_ctx *c, char *const *paths, size_t npaths, size_t n, bool follow_it)
{
	struct follower *fs = calloc(npaths ? npaths : 1, sizeof *fs);
	if (!fs)
		return -ENOMEM;
	int ret = 0;
	size_t nfollow = 0, ninit = 0;
	for (size_t i = 0; i < npaths && ret == 0; i++, ninit++) {
		fs[i] = (struct follower){.path = paths[i], .fd = -1, .ino_fd = -1, .wd_dir = -1,
					  .wd_file = -1};
		ret = tail_one(c, &fs[i], n, follow_it);
		if (ret < 0)
			fprintf(stderr, "mplog: %s: %s\n", paths[i], strerror(-ret));
	}
	/* Stdin is read to its end above; the files are followed together. */
	for (size_t i = 0; ret == 0 && follow_it && i < ninit; i++)
		if (strcmp(fs[i].path, "-"))
			fs[nfollow++] = fs[i];
		else
			mt_reader_free(&fs[i].rd);
	if (ret == 0 && follow_it)
		ret = follow(fs, nfollow, c);
	else
		nfollow = ninit;
	for (size_t i = 0; i < nfollow; i++) {
		if (strcmp(fs[i].path, "-") && fs[i].fd >= 0)
			close(fs[i].fd);
		mt_reader_free(&fs[i].rd);
	}
	free(fs);
	return ret;
}
