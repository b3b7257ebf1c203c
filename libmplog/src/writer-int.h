/* SPDX-License-Identifier: MIT */
/* The child-side writer object, shared by writer.c (logging calls) and
 * aggregator.c (writers that deliver to an aggregator in-process).
 * Internal to libmplog, never installed. */
#pragma once

#include "mplog.h"
#include "ring-int.h"

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

struct mplog_aggregator;

struct mplog_writer {
	int fd;                       /* pipe write end, not owned; -1 for agg */
	unsigned flags;               /* MPLOG_WRITER_* */
	struct mplog_aggregator *agg; /* in-process delivery, or NULL */
	pid_t owner;                  /* creating pid (agg writers only) */
	_Atomic uint64_t dropped;     /* total dropped */
	_Atomic uint64_t unreported;  /* dropped, not yet reported */
	struct mplog__ring ring;      /* records go here when mapped (sh), the
				       * pipe then waking its reader */
};

/* Deliver one encoded record body (from an aggregator writer) to the
 * aggregator's sinks. 0 or a negative errno. */
int mplog__aggregator_deliver(struct mplog_aggregator *a, const void *body, size_t len);
