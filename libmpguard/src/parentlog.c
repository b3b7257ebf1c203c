/* SPDX-License-Identifier: MIT */
/* The parent's own records: while a pool or supervisor with a log exists,
 * mplog_info() and the other default-writer calls in the process that
 * made it go to that log (its in-process writer), instead of failing
 * with -ENOTCONN. Only when the caller set no default writer of their
 * own; with several, the one made last, then the one before when it
 * goes. */
#include "pool-int.h"

#include <pthread.h>
#include <stdlib.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static mplog_writer **live; /* the writers registered, oldest first */
static size_t nlive, caplive;

void mpg__parent_log_add(mplog_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&lock);
	if (nlive == caplive) {
		size_t cap = caplive ? 2 * caplive : 4;
		mplog_writer **v = realloc(live, cap * sizeof *v);
		if (!v) { /* only the fallback is lost: the pool's own records are not */
			pthread_mutex_unlock(&lock);
			return;
		}
		live = v;
		caplive = cap;
	}
	live[nlive++] = w;
	if (!mplog_default_writer())
		mplog_set_default_writer(w);
	pthread_mutex_unlock(&lock);
}

void mpg__parent_log_remove(mplog_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nlive; i++)
		if (live[i] == w) {
			live[i] = live[--nlive];
			break;
		}
	if (mplog_default_writer() == w) /* ours, not the caller's: hand it on */
		mplog_set_default_writer(nlive ? live[nlive - 1] : NULL);
	if (!nlive) {
		free(live);
		live = NULL;
		caplive = 0;
	}
	pthread_mutex_unlock(&lock);
}
