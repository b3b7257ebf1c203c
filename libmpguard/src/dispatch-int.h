/* SPDX-License-Identifier: MIT */
/* The dispatcher's internal interface: what its files (dispatch.c and
 * those it names) call of each other. With the pool lock held, on the
 * dispatcher thread, unless a function says otherwise. */
#pragma once

#include "pool-int.h"
#include "crash-int.h"
#include "proto-int.h"

/* epoll tags: the kind in the low byte, a worker's slot above. */
#define TAG_EVENT 0u
#define TAG_CTL 1u
#define TAG_FROM 2u /* a worker's frames to us are readable */
#define TAG_TIMER 3u
#define TAG_TO 4u   /* a worker's pipe has room for our frames again */

/* dispatch.c */
void mpg__begin_stop(struct mpg_pool *p, enum pool_state st);

/* outcome.c */
int mpg__redo_push(struct job *job, struct redo r);
void mpg__fail_task(struct mpg_pool *p, struct job *job, size_t index, mpg_error *err);
void mpg__task_failure(struct mpg_pool *p, struct worker *w, struct job *job, size_t index,
			   unsigned attempts, const struct mpg__failure *f);
void mpg__task_failed(struct mpg_pool *p, struct worker *w, struct job *job, size_t index,
			unsigned attempts, mpg_error_kind kind, int code, int sig, const char *msg);
void mpg__task_raised(struct mpg_pool *p, struct worker *w, struct job *job, size_t index,
		   unsigned attempts, const struct mpg__raised *r);
void mpg__task_ok(struct mpg_pool *p, struct job *job, size_t index, const void *data,
		    size_t len, struct blob *own);

/* wio.c */
void mpg__ep_ctl(struct mpg_pool *p, int op, int fd, uint32_t events, uint64_t tag);
void mpg__worker_signal(struct mpg_pool *p, struct worker *w, int sig);
void mpg__worker_kill(struct mpg_pool *p, struct worker *w);
void mpg__worker_protocol_error(struct mpg_pool *p, struct worker *w, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Ask the fork server for a worker in slot w (W_SPAWNING); on failure a
 * negative errno and, in *what, the step that failed. See respawn.c. */
int mpg__worker_spawn(struct mpg_pool *p, struct worker *w, const char **what);
void mpg__worker_flush(struct mpg_pool *p, struct worker *w);
int mpg__worker_take_fd(struct worker *w);
/* Close its arena (and unmap its head); idempotent. */
void mpg__worker_close_arena(struct worker *w);
void mpg__worker_drop_fds(struct worker *w, unsigned n);
void mpg__worker_read(struct mpg_pool *p, struct worker *w);
/* What w sent that was not the protocol (a malformed frame, garbage), in
 * words (in buf, or w's own), or NULL if nothing. */
const char *mpg__worker_protocol_why(const struct worker *w, char *buf, size_t len);
void mpg__worker_drop_channel(struct mpg_pool *p, struct worker *w);
void mpg__worker_let_go(struct mpg_pool *p, struct worker *w);

/* results.c */
void mpg__chunk_pop(struct worker *w);
void mpg__note_culprit(struct mpg_pool *p, struct worker *w);
void mpg__results_frame(struct mpg_pool *p, struct worker *w, const uint8_t *body, size_t len,
			   unsigned nfds);
void mpg__results_rescue(struct mpg_pool *p, struct worker *w);

/* blame.c */
void mpg__worker_exited(struct mpg_pool *p, struct worker *w, int status);

/* respawn.c: starting workers, and slots whose worker could not start */
void mpg__worker_start(struct mpg_pool *p, struct worker *w);
void mpg__start_failed(struct mpg_pool *p, struct worker *w, int err, const char *what);
void mpg__respawn_due(struct mpg_pool *p);
/* Milliseconds until a waiting slot tries again, for epoll_wait(); -1: none. */
int mpg__respawn_timeout_ms(const struct mpg_pool *p);
void mpg__fail_unstartable(struct mpg_pool *p);

/* schedule.c */
void mpg__schedule(struct mpg_pool *p);
void mpg__recycle_workers(struct mpg_pool *p);

/* timelimit.c */
void mpg__on_tick(struct mpg_pool *p);
void mpg__update_timer(struct mpg_pool *p);

