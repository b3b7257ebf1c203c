/* SPDX-License-Identifier: MIT */
/* The worker protocol: every frame between the parent, the fork server and
 * workers or services, with its encoder and its decoder side by side
 * (proto.c). Decoders are total: every length is checked against what
 * remains, and they return an error before their caller changes any state
 * for a frame that is not entirely valid. Frames use the header of
 * wire-int.h; bodies are host-endian (both ends are the same program). */
#pragma once

#include "wire-int.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MPG_MAX_FRAMES 64u    /* instruction pointers in a backtrace */
#define MPG_MAX_MESSAGE 4096u /* a raised error's message, with its NUL */
#define MPG_MAX_MODULES 65536u

enum {
	MSG_CHUNK = 1,       /* parent -> worker: tasks to run */
	MSG_RESULT = 2,      /* worker -> parent: their results and raised errors */
	MSG_CRASH = 3,       /* worker -> parent: from the crash handler */
	MSG_MODULES = 4,     /* worker -> parent: loaded modules, for symbolization */
	MSG_STACK = 5,       /* worker -> parent: where a timed-out task is stuck */
	MSG_SERVICE_END = 6, /* service -> supervisor: failed, with code, message, backtrace */
	MSG_HELLO = 7,       /* worker -> parent, first: its result arena (one fd) */
};
#define MSG_WORKER_FIRST MSG_RESULT /* the types a worker may send */
#define MSG_WORKER_LAST MSG_HELLO

enum {
	CHUNK_FIXED_IN = 1u << 0,
	CHUNK_FIXED_OUT = 1u << 1,
	CHUNK_HAS_CTX = 1u << 2,
};
#define CHUNK_MODES (CHUNK_FIXED_IN | CHUNK_FIXED_OUT | CHUNK_HAS_CTX)
/* A result frame's mode bit (with CHUNK_FIXED_OUT): the results stay in
 * the worker's arena, the frame says where; the parent reads them from
 * there and releases them (arena-int.h). */
enum { RESULT_IN_ARENA = 1u << 3 };

/* Items of a generic chunk or result: each starts 16-aligned from the start
 * of its region (the chunk body; the result frame's items) and is
 * u64 kind, then
 *   ITEM_INLINE: u64 len, len bytes
 *   ITEM_SHM:    in a chunk u64 offset, u64 len; in a result u64 len; the
 *                memfd travels with the frame (SCM_RIGHTS), in item order
 *   ITEM_ERROR:  results only, a raised error (below) */
enum { ITEM_INLINE = 0, ITEM_SHM = 1, ITEM_ERROR = 2 };

/* ---- frame stream ------------------------------------------------------ */
/* What the bytes at p (avail of them) start with: 1 and *len (header and
 * body) for a whole frame of a type in [first_type, last_type]; 0 when
 * they are the start of one (a prefix of a valid header counts: garbage
 * shows at its first byte); -EBADMSG for garbage. */
int mpg__frame_peek(const uint8_t *p, size_t avail, unsigned first_type, unsigned last_type,
		    size_t *len);
/* Garbage at p: how many bytes until something that may be a frame. */
size_t mpg__frame_resync(const uint8_t *p, size_t avail);

/* ---- a raised error ---------------------------------------------------- */
/* u32 code, u32 message length, u32 nips, the message (no NUL), nips u64. */
struct mpg__raised {
	int32_t code;
	uint32_t msg_len;      /* < MPG_MAX_MESSAGE */
	const char *msg;       /* into the frame, not NUL-terminated */
	uint32_t nips;         /* <= MPG_MAX_FRAMES */
	const uint8_t *ips;    /* into the frame, unaligned */
};
void mpg__raised_put(struct mpk_buf *b, int32_t code, const char *msg, const uint64_t *ips,
		     uint32_t nips);
bool mpg__raised_get(struct mpk_reader *r, struct mpg__raised *e); /* false: malformed */
void mpg__raised_ips(const struct mpg__raised *e, uint64_t ips[MPG_MAX_FRAMES]);

/* ---- MSG_CHUNK --------------------------------------------------------- */
/* Body: this head, then if CHUNK_HAS_CTX u64 length and the context's
 * bytes, then 16-aligned the inputs: count * in_size bytes
 * (CHUNK_FIXED_IN) or count items. The decoder checks them all. */
struct mpg__chunk_head {
	uint64_t job;
	uint64_t fn;           /* the task function's address in the worker */
	uint64_t first;        /* index of the first task */
	uint32_t count;
	uint32_t mode;         /* CHUNK_* */
	uint64_t in_size, out_size; /* map_array: element sizes */
	uint64_t base;         /* the user's number of task 0 (mpg_task_index()):
				* 0 for a map, a submitted task's own number */
};
_Static_assert(sizeof(struct mpg__chunk_head) == 56, "chunk head has no padding");

/* Starts a chunk frame in b (empty): header room, head and context.
 * Inputs follow with mpg__input_put_*; the count is set by _finish. */
void mpg__chunk_begin(struct mpk_buf *b, const struct mpg__chunk_head *h, const void *ctx,
		      size_t ctx_len);
void mpg__input_put_inline(struct mpk_buf *b, const void *data, size_t len);
void mpg__input_put_shm(struct mpk_buf *b, uint64_t off, uint64_t len);
/* Align for fixed inputs sent after the buffer (ext_len bytes of them). */
void mpg__chunk_align_fixed(struct mpk_buf *b);
/* Set the count and the header; ext_len bytes follow b in the frame. */
int mpg__chunk_finish(struct mpk_buf *b, uint32_t count, size_t ext_len, uint16_t nfds);

struct mpg__chunk {
	struct mpg__chunk_head h;
	const void *ctx;       /* CHUNK_HAS_CTX */
	uint64_t ctx_len;
	struct mpk_reader inputs; /* positioned at the first input */
	unsigned nshm;         /* inputs in memfds: the fds the frame carries */
};
int mpg__chunk_decode(const void *body, size_t len, struct mpg__chunk *c);
struct mpg__input {
	bool shm;              /* else data: inline bytes */
	const void *data;
	uint64_t off, len;
};
/* The next input of a decoded chunk; false when malformed. */
bool mpg__input_next(struct mpg__chunk *c, struct mpg__input *in);

/* ---- MSG_RESULT -------------------------------------------------------- */
/* Body: this head, then
 *   fixed (CHUNK_FIXED_OUT): count * out_size bytes (with RESULT_IN_ARENA
 *     instead: u64 their offset in the arena's data region), u32 nerr,
 *     nerr times (u32 task relative to first, a raised error), in task order;
 *   generic: count items, the first 16-aligned from the end of the head. */
struct mpg__result_head {
	uint64_t job, first;
	uint32_t count, mode;
	uint64_t out_size, elapsed_ns;
};
_Static_assert(sizeof(struct mpg__result_head) == 40, "result head has no padding");
struct mpg__result_frame { /* what a worker writes first */
	struct mpk_frame_header h;
	struct mpg__result_head r;
};

void *mpg__item_put_inline(struct mpk_buf *b, size_t len); /* room for the bytes */
void mpg__item_put_shm(struct mpk_buf *b, uint64_t len);
void mpg__item_put_error(struct mpk_buf *b, int32_t code, const char *msg, const uint64_t *ips,
			 uint32_t nips);
void mpg__fixed_error_put(struct mpk_buf *b, uint32_t rel, int32_t code, const char *msg,
			  const uint64_t *ips, uint32_t nips);

struct mpg__result {
	struct mpg__result_head h;
	/* generic */
	const uint8_t *items;
	size_t items_len;
	unsigned nshm;         /* fds the frame must carry */
	/* fixed */
	bool is_fixed;
	const uint8_t *fixed;  /* count * out_size, or NULL when in_arena */
	bool in_arena;         /* RESULT_IN_ARENA: the bytes are at arena_off */
	uint64_t arena_off;
	const uint8_t *errs;
	size_t errs_len;
	uint32_t nerr;
};
int mpg__result_decode(const void *body, size_t len, struct mpg__result *res);

struct mpg__item {
	uint64_t kind;         /* ITEM_* */
	const uint8_t *data;   /* ITEM_INLINE */
	uint64_t len;          /* ITEM_INLINE, ITEM_SHM */
	struct mpg__raised err; /* ITEM_ERROR */
};
struct mpg__item_iter {
	struct mpk_reader r;
};
void mpg__items_begin(struct mpg__item_iter *it, const uint8_t *items, size_t len);
bool mpg__items_next(struct mpg__item_iter *it, struct mpg__item *item); /* false: malformed */
/* Fixed-mode errors of a decoded result, in order. */
bool mpg__fixed_error_next(struct mpk_reader *r, uint32_t *rel, struct mpg__raised *e);

/* ---- MSG_CRASH, MSG_STACK ---------------------------------------------- */
/* Crash body: this head, then nips u64 instruction pointers, the faulting
 * frame first. Written by the crash handler from static memory. */
struct mpg__crash_head {
	uint32_t signo;
	int32_t code;          /* si_code */
	uint64_t addr;         /* si_addr: the fault address */
	int32_t sender_pid;    /* for signals sent with kill(): who sent it */
	uint32_t nips;
};
struct mpg__crash_frame {
	struct mpk_frame_header h;
	struct mpg__crash_head c;
	uint64_t ips[MPG_MAX_FRAMES];
};
/* Stack body: u32 nips, u32 0, nips u64. */
struct mpg__stack_frame {
	struct mpk_frame_header h;
	uint32_t nips, pad;
	uint64_t ips[MPG_MAX_FRAMES];
};
/* Async-signal-safe: fill the header for nips frames; the frame's size. */
size_t mpg__crash_frame_seal(struct mpg__crash_frame *f);
size_t mpg__stack_frame_seal(struct mpg__stack_frame *f);
int mpg__crash_decode(const void *body, size_t len, struct mpg__crash_head *c,
		      uint64_t ips[MPG_MAX_FRAMES]);
int mpg__stack_decode(const void *body, size_t len, uint32_t *nips, uint64_t ips[MPG_MAX_FRAMES]);

/* ---- MSG_MODULES ------------------------------------------------------- */
/* Body: u32 n, then n times u64 bias, u64 lo, u64 hi, u32 path length, the
 * path (no NUL), u32 build-id length (<= 64), the build-id. */
struct mpg__module {
	uint64_t bias;       /* load bias (dlpi_addr) */
	uint64_t lo, hi;     /* mapped address range of its PT_LOAD segments */
	char *path;
	uint8_t build_id[64];
	uint32_t build_id_len;
};
struct mpg__modlist {
	struct mpg__module *m;
	size_t n;
};
void mpg__module_put(struct mpk_buf *b, uint64_t bias, uint64_t lo, uint64_t hi,
		     const char *path, const uint8_t *id, uint32_t idlen);
int mpg__modlist_decode(const void *body, size_t len, struct mpg__modlist *out);
void mpg__modlist_free(struct mpg__modlist *l);

/* ---- MSG_SERVICE_END, MSG_HELLO ---------------------------------------- */
/* A service's failure: one raised error. */
int mpg__service_end_encode(struct mpk_buf *b, int32_t code, const char *msg,
			    const uint64_t *ips, uint32_t nips);
int mpg__service_end_decode(const void *body, size_t len, struct mpg__raised *e);
/* Hello: u32 version (1), u32 0; carries the worker's result arena. */
#define MPG_HELLO_VERSION 1u
struct mpg__hello_frame {
	struct mpk_frame_header h;
	uint32_t version, pad;
};
void mpg__hello_init(struct mpg__hello_frame *f, unsigned nfds);
int mpg__hello_decode(const void *body, size_t len, unsigned nfds);

/* ---- fork server ------------------------------------------------------- */
enum { FS_SPAWN = 1, FS_SPAWNED, FS_SPAWN_FAILED, FS_EXITED, FS_KILL };
/* FS_SPAWN's value: bits 0-3 say which of the log, stdout and stderr
 * pipes and the log ring follow; this one, that two frame pipes follow
 * the socket first. */
#define FS_SPAWN_PIPES (1 << 4)
struct mpg__fsmsg {
	uint32_t type;
	uint32_t slot;
	int32_t pid;
	int32_t value; /* wait status, errno, a signal, or which pipes follow */
};
/* A datagram of len bytes (truncated: more than fit): 0 or -EPROTO. */
int mpg__fsmsg_decode(const void *p, size_t len, bool truncated, struct mpg__fsmsg *m);
