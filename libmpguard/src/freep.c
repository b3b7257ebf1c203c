/* SPDX-License-Identifier: MIT */
/* *_freep helpers, for __attribute__((cleanup(...))): each frees *p,
 * which may be NULL, as its _free() does. */
#include "pool-int.h"

MPG_EXPORT void mpg_options_freep(mpg_options **o) { if (o) mpg_options_free(*o); }
MPG_EXPORT void mpg_pool_freep(mpg_pool **p) { if (p) mpg_pool_free(*p); }
MPG_EXPORT void mpg_results_freep(mpg_results **r) { if (r) mpg_results_free(*r); }
MPG_EXPORT void mpg_iter_freep(mpg_iter **it) { if (it) mpg_iter_free(*it); }
MPG_EXPORT void mpg_future_freep(mpg_future **f) { if (f) mpg_future_free(*f); }
MPG_EXPORT void mpg_supervisor_freep(mpg_supervisor **s) { if (s) mpg_supervisor_free(*s); }
