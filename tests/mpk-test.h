/* SPDX-License-Identifier: MIT */
/* Shared helpers for the Check suites: resource accounting (fds, children)
 * and a main() that runs one suite with core dumps off. */
#pragma once

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* Number of open fds of this process. */
static inline int mpk_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* This process has no child left, reaped or not. */
static inline void mpk_assert_no_children(void)
{
	errno = 0;
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
}

/* Wait (event-driven, via pidfd) until process pid has exited, or the
 * safety timeout expired. Returns true if it exited. Works for processes
 * that are not our children. */
static inline bool mpk_wait_gone(int pidfd, int timeout_ms)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	int r;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r == 1;
}

/* Each test program defines its suite and gets this main. Exit 77 skips. */
#define MPK_TEST_MAIN(make_suite)                                              \
	int main(void)                                                         \
	{                                                                      \
		struct rlimit nocore = {0, 0};                                 \
		setrlimit(RLIMIT_CORE, &nocore);                               \
		SRunner *sr = srunner_create(make_suite());                    \
		srunner_run_all(sr, CK_ENV);                                   \
		int failed = srunner_ntests_failed(sr);                        \
		srunner_free(sr);                                              \
		return failed ? EXIT_FAILURE : EXIT_SUCCESS;                   \
	}
