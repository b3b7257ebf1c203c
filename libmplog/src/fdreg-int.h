/* SPDX-License-Identifier: MIT */
/* The fd registry: fds of this library's objects, closed in every child
 * forked (without exec) from this process by a pthread_atfork() handler.
 * Internal to mpkit; each library compiles its own hidden copy and
 * registers its own fds: libmplog an aggregator's epoll, eventfd, channel
 * read ends and the files and sockets its sinks opened; libmpguard a
 * pool's or supervisor's sockets, pidfds, epoll, eventfds and timers. */
#pragma once

/* Register fd (>= 0; nothing for -1). Out of memory it stays unregistered:
 * later children keep it, nothing else changes. */
void mpk_fdreg_add(int fd);
void mpk_fdreg_del(int fd);
/* Unregister and close *fd, then set it to -1; nothing when it is -1. */
void mpk_fdreg_close(int *fd);
