/* SPDX-License-Identifier: MIT */
/* mpguard-mpi.h — libmpguard-mpi: a libmpguard pool's calls spread over
 * the ranks of an MPI job, each rank running a local libmpguard pool.
 *
 * The program is started with mpirun (or srun) and calls
 * mpg_cluster_init() first thing in main(). On rank 0 it returns a
 * cluster handle, the driver; on every other rank it runs a node agent
 * that takes chunks of tasks over MPI, runs them on its local pool and
 * sends the results and failures back, until rank 0 frees its handle.
 * MPI is the only transport and launcher: no sockets, no host discovery.
 *
 * On rank 0, mpg_cluster_map(), mpg_cluster_imap_unordered(),
 * mpg_cluster_submit() and mpg_cluster_map_array() are mpg_map(),
 * mpg_imap_unordered(), mpg_submit() and mpg_map_array() over every
 * rank's workers; their outcomes are read with libmpguard's own
 * mpg_results, mpg_iter and mpg_future calls, and their callbacks run on
 * rank 0's pool's dispatcher thread, one at a time. Rank 0's MPI calls are
 * made by a driver thread of the cluster (MPI_THREAD_SERIALIZED), so the
 * caller need not drive anything: call mpg_cluster_init() and
 * mpg_cluster_free() from the same thread (the one that initializes and
 * finalizes MPI), the other calls from any thread of rank 0.
 *
 * A task that fails on any rank (raises, exits, crashes, is killed) reaches
 * rank 0 as the same mpg_error a local pool gives, symbolized on the rank
 * where it ran, with mpg_error_host() and mpg_error_rank() set; it never
 * takes its rank down. MPG_RETRY runs it again on another rank; MPG_ABORT
 * stops every rank's chunks.
 *
 * Task functions travel as an offset in their module (the program or a
 * shared library, checked by its build ID), so every rank must run the
 * same build. Inputs, results and a call's context travel by value; the
 * pool's userdata is each rank's own (see mpg_cluster_map()).
 *
 * The log records of every agent's workers and pool reach rank 0's pool's
 * aggregator over MPI and come out of its sinks stamped with the agent's
 * host, pid and rank (mplog_aggregator_inject()), task indices those of
 * the whole call; an agent's pool does not write them itself. A chunk's
 * records reach rank 0 before its answer, so a map's are in rank 0's log
 * when it returns; between calls they come as they are made, and
 * mpg_cluster_free() reads the agents' last ones before MPI_Finalize.
 *
 * A rank that dies never hangs the job: Open MPI ends it by default; under
 * orte_enable_recovery, rank 0 declares dead a rank on its host whose
 * process ended, and one anywhere that holds chunks and stays silent past
 * a deadline (agents send heartbeats while they run chunks), and an agent
 * returns when rank 0 dies on its host or is silent past the deadline
 * (rank 0 beats to every agent): environment
 * of rank 0, MPKIT_CLUSTER_DEADLINE_MS (0: never; default 10000 under
 * orte_enable_recovery, else never: a rank stopped in a debugger is not
 * taken for dead) and
 * MPKIT_CLUSTER_PIDFD=0 (no watch by pidfd on rank 0's host). Waiting
 * ranks sleep (MPI_Iprobe and naps up to 1 ms), not spin.
 */
#ifndef MPGUARD_MPI_H
#define MPGUARD_MPI_H

#include "mpguard.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpg_cluster mpg_cluster; /* rank 0's handle on the job */

/**
 * mpg_cluster_init - start the local pool with @opts (may be NULL; as
 * mpg_pool_new()), then MPI (MPI_Init_thread(@argc, @argv, SERIALIZED)),
 * in that order: the pool's fork server is forked before MPI exists in
 * the process, and no process that initialized MPI forks. On rank 0 the
 * cluster's driver thread makes every MPI call from then on until
 * mpg_cluster_free().
 * Call it before any other thread starts and before MPI_Init.
 * On rank 0: returns 0 and the handle in *@ret. On every other rank: runs
 * the node agent until rank 0 calls mpg_cluster_free(), then stops its
 * pool, finalizes MPI and returns 1 with *@ret NULL: the program should
 * then leave main() (`if (r != 0) return r < 0;`). An agent sends its
 * pool's log records to rank 0 (see above): the pool's default stderr
 * sink is taken out there; an aggregator of yours (mpg_options_set_log())
 * keeps its sinks, so add them on rank 0 once this returned 0. Under
 * Open MPI's orte_enable_recovery, an agent that sees rank 0 on its host
 * die, or hears nothing from it past the deadline, returns -ECONNRESET,
 * MPI not finalized.
 * Returns -EINVAL, -ECHILD (in a worker), -EALREADY (MPI initialized
 * already, or finalized), -EIO (an MPI call failed, or MPI gives less than
 * MPI_THREAD_SERIALIZED), -EAGAIN (no thread for the driver), or an error
 * of mpg_pool_new(). Since 0.1.
 */
MPG_EXPORT int mpg_cluster_init(int *argc, char ***argv, const mpg_options *opts,
				mpg_cluster **ret);

/** mpg_cluster_free - wait for the chunks out, stop the agents (each
 *  returns from its mpg_cluster_init()), read their last log records into
 *  rank 0's log, free rank 0's pool (tasks of calls not ended, an iterator
 *  not read to its end, end cancelled), finalize MPI. From the thread that
 *  called mpg_cluster_init(). Accepts NULL. Since 0.1. */
MPG_EXPORT void mpg_cluster_free(mpg_cluster *cl);
/** mpg_cluster_freep - mpg_cluster_free(*cl), for __attribute__((cleanup)). */
MPG_EXPORT void mpg_cluster_freep(mpg_cluster **cl);

/** Number of ranks (1 + agents), and of worker slots over all ranks. */
MPG_EXPORT int mpg_cluster_ranks(const mpg_cluster *cl);
MPG_EXPORT unsigned mpg_cluster_workers(const mpg_cluster *cl);

/** mpg_cluster_set_local - whether rank 0's own workers take chunks too
 *  (default 1); with 0 rank 0 only drives. Returns 0, or -EINVAL (no
 *  cluster, or 0 with no agent). Since 0.1. */
MPG_EXPORT int mpg_cluster_set_local(mpg_cluster *cl, int on);

/**
 * mpg_cluster_map_array - mpg_map_array() over every rank's workers: input
 * i is the @in_size bytes at in + i * in_size; its result must be exactly
 * @out_size bytes (at most 8 MiB) and is written to out + i * out_size in
 * input order (failed slots are zeroed). @chunksize tasks go in one MPI
 * message (0: automatic, guided: a quarter of a worker slot's share first,
 * smaller as the work runs out, at most 4 MiB of input each); each rank
 * spreads its chunk over its workers. @fn must be
 * in the program or a library loaded on every rank.
 * After the map, @on_error (may be NULL) is called for each failed task,
 * in input order, with @userdata, on the calling thread; mpg_error_task()
 * is its index in the call (mpg_task_index() inside the task too),
 * mpg_error_host() and mpg_error_rank() where it ran. The pool's policy
 * retries apply (a failed task runs again on another rank); no abort. Under
 * orte_enable_recovery, the tasks of chunks held by an agent that died
 * fail as MPG_ERR_CANCELLED, code EHOSTDOWN, with its rank and host; the
 * map goes on over the other ranks.
 * Returns the number of failed tasks (at most INT_MAX), or -EINVAL,
 * -ENOMEM, -EMSGSIZE (@out_size, or a chunk over INT_MAX bytes), -ENOENT
 * (@fn is in no loaded module), -EDEADLK (in a callback of rank 0's pool),
 * -ESHUTDOWN (a call aborted before), -EIO (an MPI call failed), -EPROTO
 * (an agent's answer was malformed). Since 0.1.
 */
MPG_EXPORT int mpg_cluster_map_array(mpg_cluster *cl, mpg_task_fn fn, const void *in,
				     size_t in_size, size_t n, void *out, size_t out_size,
				     size_t chunksize, mpg_error_fn on_error, void *userdata);

/** mpg_cluster_abort_error - the error that aborted the cluster's calls
 *  (MPG_ABORT), or NULL. Valid until mpg_cluster_free(). Since 0.1. */
MPG_EXPORT const mpg_error *mpg_cluster_abort_error(mpg_cluster *cl);

/**
 * mpg_cluster_map - mpg_map() over every rank's workers: @fn on each of the
 * @n @inputs (any lengths; valid until the call returns), results of any
 * length in *@ret in input order, read with the mpg_results_*() calls of a
 * local pool. Inputs are cut into chunks, one MPI message each: @opts'
 * chunksize inputs (0, the default: about 4 chunks per worker slot of the
 * job), fewer where their bytes reach 4 MiB. @fn must be in the program
 * or a library loaded on every rank.
 * Of @opts (may be NULL; the pool's defaults, those of mpg_cluster_init(),
 * apply as for a pool), these apply: chunksize (as above); policy and
 * retries (a failed task runs again on another rank when there is one:
 * its error's attempts count every run, its rank is the last); MPG_ABORT
 * (the first failure that reaches rank 0 aborts rank 0's pool, as mpg_map()
 * does a pool: no chunk is sent any more, every agent's pool kills the
 * workers of the chunk it runs, the call returns -ECANCELED,
 * mpg_cluster_abort_error() says why, and later calls return -ESHUTDOWN;
 * the agents live on until mpg_cluster_free()); abort_exit (rank 0 prints
 * the error and exits, which ends the job); context (sent
 * with every chunk: mpg_task_context() works on every rank); the error
 * callback and progress (called on rank 0's pool's dispatcher thread,
 * one at a time, as for a pool); timeout (applied on the rank where the
 * task runs). Pool-only options: -EINVAL.
 * Inside a task, mpg_task_index() is its index in the whole call on every
 * rank, and userdata is the pool's (mpg_options_set_userdata() of the
 * options given to mpg_cluster_init()): each rank evaluated those options
 * itself, so it points into that rank's own memory, as it was when
 * mpg_cluster_init() made the pool there (before MPI_Init).
 * Errors carry mpg_error_host() and mpg_error_rank(); mpg_error_task() is
 * the index in the call. Under orte_enable_recovery, the tasks of an
 * agent that died fail as MPG_ERR_CANCELLED (EHOSTDOWN), or run again
 * elsewhere while retries last.
 * Returns as mpg_map(): 0 with *@ret, or with @ret NULL the number of
 * failed tasks; -ECANCELED (MPG_ABORT), -EINVAL, -ENOMEM, -ESHUTDOWN
 * (aborted before), -ECHILD, -EDEADLK (in a callback), -EMSGSIZE (a
 * context over 16 MiB), -ENOENT (@fn is in no loaded module), or the
 * error that broke the cluster: -EIO (an MPI call failed), -EPROTO (an
 * agent's answer was malformed); a chunk that cannot be sent (over
 * INT_MAX bytes) fails its tasks. Since 0.1.
 */
MPG_EXPORT int mpg_cluster_map(mpg_cluster *cl, mpg_task_fn fn, const mpg_buf *inputs, size_t n,
			       const mpg_options *opts, mpg_results **ret);

/**
 * mpg_cluster_imap_unordered - mpg_imap_unordered() over every rank's
 * workers: starts @fn on each of the @n @inputs (valid until the iterator
 * is freed) and returns at once; read the results as they complete with
 * mpg_iter_next(), free the iterator with mpg_iter_free() (tasks not sent
 * to a rank yet are dropped). Chunks and @opts as mpg_cluster_map(); the
 * iterator's indexes are input indexes. Returns 0, -EINVAL, -ENOMEM,
 * -ESHUTDOWN, -ECHILD, -EMSGSIZE, -ENOENT, or the error that broke the
 * cluster (-EIO, -EPROTO). Since 0.1.
 */
MPG_EXPORT int mpg_cluster_imap_unordered(mpg_cluster *cl, mpg_task_fn fn, const mpg_buf *inputs,
					  size_t n, const mpg_options *opts, mpg_iter **ret);

/**
 * mpg_cluster_submit - mpg_submit() of one task to the cluster: @in is
 * copied, the task runs on whichever rank has a worker free first. Its
 * number is the one rank 0's pool would give (mpg_future_task(), and
 * mpg_task_index() inside the task on any rank). @on_result or @on_error
 * (NULL: the call's or pool's error callback) run on rank 0's pool's
 * dispatcher thread, one at a time, with @userdata; the future (@ret may
 * be NULL: fire and forget) is read with mpg_future_wait(),
 * mpg_future_result() and mpg_future_error(), and freed with
 * mpg_future_free(). @opts as mpg_cluster_map(), chunksize aside. It may
 * be called from a callback. Returns as mpg_cluster_imap_unordered().
 * Since 0.1.
 */
MPG_EXPORT int mpg_cluster_submit(mpg_cluster *cl, mpg_task_fn fn, const void *in, size_t len,
				  const mpg_options *opts, mpg_result_fn on_result,
				  mpg_error_fn on_error, void *userdata, mpg_future **ret);

/** mpg_cluster_wait - wait until every task submitted with
 *  mpg_cluster_submit() before this call has ended and its callbacks have
 *  run, as mpg_pool_wait() (@timeout_ms < 0: forever). Returns 0,
 *  -ETIMEDOUT, -EINVAL, -ECHILD, or -EDEADLK in a callback. Since 0.1. */
MPG_EXPORT int mpg_cluster_wait(mpg_cluster *cl, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* MPGUARD_MPI_H */
