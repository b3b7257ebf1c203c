/* SPDX-License-Identifier: MIT */
/* The worker's crash handler: on a fatal signal it records the signal,
 * si_code, fault address and the raw instruction pointers of the crashed
 * stack (libunwind, seeded from the signal's context), writes them to the
 * parent as one frame, and re-raises the signal so the worker dies of it.
 *
 * Async-signal-safety: the handler runs on a preallocated alternate stack
 * (so stack overflows are caught too), touches only static memory, calls
 * only async-signal-safe functions (sigaction, write, alarm, raise) and
 * libunwind's local unwinder, warmed up at worker start so that it does not
 * allocate. A fault inside the handler kills the worker with the default
 * action (dispositions are reset first); a hang is cut by alarm(). */
#define UNW_LOCAL_ONLY
#include "pool-int.h"
#include "crash-int.h"

#include <errno.h>
#include <libunwind.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGSYS, SIGTRAP};
#define NCRASH (sizeof crash_signals / sizeof crash_signals[0])

/* libunwind needs a few pages of stack; overflows land on the guard page. */
#define ALT_STACK_SIZE (256u * 1024u)

static struct {
	int fd; /* where frames to the parent go */
	const volatile bool *sending; /* a result frame is half written */
	uintptr_t stop_at; /* entry of the worker's task loop */
	unsigned pause_ms; /* pause for a debugger after the report, or 0 */
	struct mpg__crash_frame frame;
} C;

static void reset_dispositions(void)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	for (size_t i = 0; i < NCRASH; i++)
		sigaction(crash_signals[i], &dfl, NULL);
}

static void write_all(const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(C.fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		b += w;
		n -= (size_t)w;
	}
}

/* Walk the stack into ips, stopping at the pool's own task loop: the frames
 * below it are the library's, the same in every report. */
static uint32_t collect(unw_cursor_t *cursor, uint64_t *ips, uint32_t max)
{
	uint32_t n = 0;
	do {
		unw_word_t ip;
		if (unw_get_reg(cursor, UNW_REG_IP, &ip) < 0 || ip == 0)
			break;
		unw_proc_info_t pi;
		if (C.stop_at && unw_get_proc_info(cursor, &pi) == 0 && pi.start_ip == C.stop_at)
			break;
		ips[n++] = ip;
	} while (n < max && unw_step(cursor) > 0);
	return n;
}

static void on_crash(int sig, siginfo_t *si, void *ucontext)
{
	int saved = errno;
	reset_dispositions(); /* a second fault, in here, kills us */
	alarm(5);             /* and so does a hang (SIGALRM's default action) */
	mpg__status_crashing();

	unw_cursor_t cursor;
	uint32_t n = 0;
	if (unw_init_local2(&cursor, (unw_context_t *)ucontext, UNW_INIT_SIGNAL_FRAME) == 0)
		n = collect(&cursor, C.frame.ips, MPG_MAX_FRAMES);
	C.frame.c = (struct mpg__crash_head){
		.signo = (uint32_t)sig,
		.code = si->si_code,
		.addr = (uint64_t)(uintptr_t)si->si_addr,
		.sender_pid = si->si_code <= 0 ? si->si_pid : 0,
		.nips = n,
	};
	size_t len = mpg__crash_frame_seal(&C.frame);
	/* Never in the middle of another frame: the stream would be garbage. */
	if (!*C.sending)
		write_all(&C.frame, len);
	if (C.pause_ms) {
		alarm(0); /* the pause has its own timeout */
		mpg__pause(WP_CRASH, C.pause_ms);
		alarm(5);
	}

	errno = saved;
	/* The default action now applies: re-raise for a true exit status. For
	 * a fault the faulting instruction re-runs on return and faults again;
	 * raise() covers signals sent with kill() and abort(). */
	raise(sig);
}

/* SIGXCPU: the parent says the task ran over its time limit. Report where
 * it is stuck and carry on; the parent kills us once it has the report.
 * Same rules as on_crash: static memory, async-signal-safe calls only. */
static void on_stack_request(int sig, siginfo_t *si, void *ucontext)
{
	(void)sig;
	(void)si;
	int saved = errno;
	static struct mpg__stack_frame f;
	unw_cursor_t cursor;
	uint32_t n = 0;
	if (unw_init_local2(&cursor, (unw_context_t *)ucontext, UNW_INIT_SIGNAL_FRAME) == 0)
		n = collect(&cursor, f.ips, MPG_MAX_FRAMES);
	f.nips = n;
	size_t len = mpg__stack_frame_seal(&f);
	if (!*C.sending)
		write_all(&f, len);
	errno = saved;
}

int mpg__crash_install(int fd, const volatile bool *sending, const void *task_loop)
{
	C.fd = fd;
	C.sending = sending;
	C.stop_at = (uintptr_t)task_loop;

	long page = sysconf(_SC_PAGESIZE);
	uint8_t *mem = mmap(NULL, ALT_STACK_SIZE + (size_t)page, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	mprotect(mem, (size_t)page, PROT_NONE); /* guard: stacks grow down */
	stack_t ss = {.ss_sp = mem + page, .ss_size = ALT_STACK_SIZE};
	if (sigaltstack(&ss, NULL) < 0)
		return -errno;

	/* Before the first task, though the fork server set libunwind up: it
	 * touches this copy's unwind state, so the crash handler's first
	 * unwind does not pay for it (measured: fault to callback faster). */
	mpg__unwind_warm();

	struct sigaction sa = {.sa_sigaction = on_crash, .sa_flags = SA_SIGINFO | SA_ONSTACK};
	sigfillset(&sa.sa_mask);
	for (size_t i = 0; i < NCRASH; i++)
		if (sigaction(crash_signals[i], &sa, NULL) < 0)
			return -errno;
	struct sigaction st = {.sa_sigaction = on_stack_request,
			       .sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART};
	sigfillset(&st.sa_mask);
	if (sigaction(SIGXCPU, &st, NULL) < 0)
		return -errno;
	return 0;
}

void mpg__unwind_warm(void)
{
	void *warm[8];
	(void)unw_backtrace(warm, 8);
}

void mpg__crash_set_pause(unsigned timeout_ms)
{
	C.pause_ms = timeout_ms;
}

unsigned mpg__backtrace_here(uint64_t *ips, unsigned max, unsigned skip)
{
	unw_context_t ctx;
	unw_cursor_t cursor;
	if (max > MPG_MAX_FRAMES)
		max = MPG_MAX_FRAMES;
	if (unw_getcontext(&ctx) < 0 || unw_init_local(&cursor, &ctx) < 0)
		return 0;
	for (unsigned i = 0; i < skip; i++) /* this function, then the callers asked */
		if (unw_step(&cursor) <= 0)
			return 0;
	return collect(&cursor, ips, max);
}
