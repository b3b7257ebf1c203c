/* SPDX-License-Identifier: MIT */
/* A tiny library the errors suite loads with dlopen() inside a worker. */
__attribute__((visibility("default"))) int crashlib_deref(volatile int *p);

/* UBSan must let the NULL dereference fault. */
static const int crashlib_line = __LINE__ + 3; /* the dereference below */
__attribute__((visibility("default"), no_sanitize_undefined)) int crashlib_deref(volatile int *p)
{
	return *p + crashlib_line; /* p is NULL */
}
