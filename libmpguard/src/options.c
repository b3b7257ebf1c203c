/* SPDX-License-Identifier: MIT */
/* Pool and per-call options. */
#include "pool-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

MPG_EXPORT int mpg_options_new(mpg_options **ret)
{
	if (!ret)
		return -EINVAL;
	mpg_options *o = calloc(1, sizeof *o);
	if (!o)
		return -ENOMEM;
	o->abort_exit = -1;
	*ret = o;
	return 0;
}

MPG_EXPORT void mpg_options_free(mpg_options *o)
{
	if (!o)
		return;
	free(o->context);
	free(o);
}

MPG_EXPORT int mpg_options_set_workers(mpg_options *o, unsigned n)
{
	if (!o || n == 0 || n > MPG_MAX_WORKERS)
		return -EINVAL;
	o->workers = n;
	o->set |= OPT_WORKERS;
	return 0;
}

MPG_EXPORT int mpg_options_set_policy(mpg_options *o, mpg_policy policy, unsigned retries)
{
	if (!o || retries > MPG_MAX_RETRIES)
		return -EINVAL;
	if (policy != MPG_CONTINUE && policy != MPG_RETRY && policy != MPG_ABORT)
		return -EINVAL;
	if (policy == MPG_RETRY && retries == 0)
		retries = 1;
	o->policy = policy;
	o->retries = retries;
	o->set |= OPT_POLICY;
	return 0;
}

MPG_EXPORT int mpg_options_set_abort_exit(mpg_options *o, int status)
{
	if (!o || status < -1 || status > 255)
		return -EINVAL;
	o->abort_exit = status;
	o->set |= OPT_ABORT_EXIT;
	return 0;
}

MPG_EXPORT int mpg_options_set_chunksize(mpg_options *o, size_t n)
{
	if (!o || n > (size_t)UINT32_MAX)
		return -EINVAL;
	o->chunksize = n;
	o->set |= OPT_CHUNKSIZE;
	return 0;
}

MPG_EXPORT int mpg_options_set_userdata(mpg_options *o, void *userdata)
{
	if (!o)
		return -EINVAL;
	o->userdata = userdata;
	o->set |= OPT_USERDATA;
	return 0;
}

MPG_EXPORT int mpg_options_set_context(mpg_options *o, const void *ctx, size_t len)
{
	if (!o || (!ctx && len))
		return -EINVAL;
	if (len > MPG_MAX_CONTEXT)
		return -EMSGSIZE;
	void *copy = NULL;
	if (len) {
		copy = malloc(len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, ctx, len);
	}
	free(o->context);
	o->context = copy;
	o->context_len = len;
	o->set |= OPT_CONTEXT;
	return 0;
}

MPG_EXPORT int mpg_options_set_error_callback(mpg_options *o, mpg_error_fn fn, void *userdata)
{
	if (!o)
		return -EINVAL;
	o->on_error = fn;
	o->on_error_userdata = userdata;
	o->set |= OPT_ERROR_CB;
	return 0;
}

MPG_EXPORT int mpg_options_set_shm_threshold(mpg_options *o, size_t bytes)
{
	if (!o || bytes < MPG_MIN_SHM_THRESHOLD || bytes > MPG_CHUNK_MAX_BYTES)
		return -EINVAL;
	o->shm_threshold = bytes;
	o->set |= OPT_SHM_THRESHOLD;
	return 0;
}

MPG_EXPORT int mpg_options_set_timeout(mpg_options *o, unsigned ms)
{
	if (!o || ms > MPG_MAX_TIMEOUT_MS)
		return -EINVAL;
	o->timeout_ms = ms;
	o->set |= OPT_TIMEOUT;
	return 0;
}

MPG_EXPORT int mpg_options_set_max_tasks_per_worker(mpg_options *o, uint64_t n)
{
	if (!o)
		return -EINVAL;
	o->max_tasks = n;
	o->set |= OPT_MAX_TASKS;
	return 0;
}

MPG_EXPORT int mpg_options_set_close_fds(mpg_options *o, int close_fds)
{
	if (!o)
		return -EINVAL;
	o->close_fds = close_fds != 0;
	o->set |= OPT_CLOSE_FDS;
	return 0;
}

MPG_EXPORT int mpg_options_set_log(mpg_options *o, mplog_aggregator *log)
{
	if (!o)
		return -EINVAL;
	o->log = log;
	o->set |= OPT_LOG;
	return 0;
}

MPG_EXPORT int mpg_options_set_capture(mpg_options *o, unsigned streams)
{
	if (!o || (streams & ~(unsigned)(MPG_CAPTURE_STDOUT | MPG_CAPTURE_STDERR)))
		return -EINVAL;
	o->capture = streams;
	o->set |= OPT_CAPTURE;
	return 0;
}

MPG_EXPORT int mpg_options_set_pause(mpg_options *o, unsigned flags, unsigned timeout_ms)
{
	if (!o || (flags & ~(unsigned)(MPG_PAUSE_AT_START | MPG_PAUSE_ON_CRASH)) ||
	    timeout_ms > MPG_MAX_TIMEOUT_MS)
		return -EINVAL;
	o->pause = flags;
	o->pause_timeout_ms = timeout_ms ? timeout_ms : MPG_DEFAULT_PAUSE_TIMEOUT_MS;
	o->set |= OPT_PAUSE;
	return 0;
}

MPG_EXPORT int mpg_options_set_control(mpg_options *o, int on)
{
	if (!o)
		return -EINVAL;
	o->control = on != 0;
	o->set |= OPT_CONTROL;
	return 0;
}

MPG_EXPORT int mpg_options_set_progress(mpg_options *o, mpg_progress_fn fn, void *userdata,
					unsigned interval_ms)
{
	if (!o || interval_ms > MPG_MAX_PROGRESS_MS)
		return -EINVAL;
	o->progress_fn = fn;
	o->progress_userdata = userdata;
	o->progress_ms = interval_ms;
	o->set |= OPT_PROGRESS;
	return 0;
}

MPG_EXPORT int mpg_options_set_progress_bar(mpg_options *o, mpg_progress_bar mode)
{
	if (!o || (mode != MPG_PROGRESS_BAR_OFF && mode != MPG_PROGRESS_BAR_AUTO &&
		   mode != MPG_PROGRESS_BAR_TTY))
		return -EINVAL;
	o->bar = mode;
	o->set |= OPT_PROGRESS_BAR;
	return 0;
}

void mpg__pause_from_env(unsigned *flags, unsigned *timeout_ms)
{
	const char *env = getenv("MPKIT_PAUSE");
	*flags = 0;
	*timeout_ms = MPG_DEFAULT_PAUSE_TIMEOUT_MS;
	if (!env)
		return;
	if (strstr(env, "start"))
		*flags |= MPG_PAUSE_AT_START;
	if (strstr(env, "crash"))
		*flags |= MPG_PAUSE_ON_CRASH;
	const char *t = getenv("MPKIT_PAUSE_TIMEOUT");
	char *end;
	unsigned long s = t ? strtoul(t, &end, 10) : 0;
	if (t && *t && !*end && s > 0 && s <= MPG_MAX_TIMEOUT_MS / 1000)
		*timeout_ms = (unsigned)s * 1000u;
}
