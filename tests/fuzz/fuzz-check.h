/* SPDX-License-Identifier: MIT */
/* What every fuzz target needs beyond libFuzzer's entry point. */
#pragma once

#include <stdio.h>
#include <stdlib.h>

/* A failed invariant: say which, then abort() so libFuzzer saves the input. */
#define FUZZ_CHECK(cond)                                                               \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                \
			abort();                                                       \
		}                                                                      \
	} while (0)
