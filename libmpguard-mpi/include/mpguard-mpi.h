/* SPDX-License-Identifier: MIT */
/* mpguard-mpi.h — libmpguard-mpi: one map spread over the ranks of an MPI
 * job, each rank running a local libmpguard pool.
 *
 * The program is started with mpirun (or srun) and calls
 * mpg_cluster_init() first thing in main(). On rank 0 it returns a
 * cluster handle, the driver; on every other rank it runs a node agent
 * that takes chunks of tasks over MPI, runs them on its local pool and
 * sends the results and failures back, until rank 0 frees its handle.
 * MPI is the only transport and launcher: no sockets, no host discovery.
 *
 * A task that fails on any rank (raises, exits, crashes, is killed) reaches
 * rank 0 as the same mpg_error a local pool gives, symbolized on the rank
 * where it ran, with mpg_error_host() and mpg_error_rank() set; it never
 * takes its rank down.
 *
 * Task functions travel as an offset in their module (the program or a
 * shared library, checked by its build ID), so every rank must run the
 * same build. Inputs and results travel by value. Not yet: mpg_map(),
 * mpg_imap_unordered(), mpg_submit() on a cluster, logs of the agents'
 * workers on rank 0, retry on another rank. A rank that dies never hangs
 * the job: Open MPI ends it by default; under orte_enable_recovery, the
 * death of a rank on rank 0's host fails the tasks that rank held.
 * Waiting ranks sleep (MPI_Iprobe and naps up to 1 ms), not spin.
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
 * mpg_pool_new()), then MPI (MPI_Init_thread(@argc, @argv, FUNNELED)), in
 * that order: the pool's fork server is forked before MPI exists in the
 * process, and no process that initialized MPI forks.
 * Call it before any other thread starts and before MPI_Init.
 * On rank 0: returns 0 and the handle in *@ret. On every other rank: runs
 * the node agent until rank 0 calls mpg_cluster_free(), then stops its
 * pool, finalizes MPI and returns 1 with *@ret NULL: the program should
 * then leave main() (`if (r != 0) return r < 0;`). Under Open MPI's
 * orte_enable_recovery, an agent that sees rank 0 on its host die returns
 * -ECONNRESET, MPI not finalized.
 * Returns -EINVAL, -ECHILD (in a worker), -EALREADY (MPI initialized
 * already, or finalized), -EIO (an MPI call failed, or MPI gives less than
 * MPI_THREAD_FUNNELED), or an error of mpg_pool_new(). Since 0.1.
 */
MPG_EXPORT int mpg_cluster_init(int *argc, char ***argv, const mpg_options *opts,
				mpg_cluster **ret);

/** mpg_cluster_free - stop the agents (each returns from its
 *  mpg_cluster_init()), free rank 0's pool, finalize MPI. Accepts NULL.
 *  Since 0.1. */
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
 * in input order, with @userdata; mpg_error_task() is its index in the
 * call, mpg_error_host() and mpg_error_rank() where it ran. Under
 * orte_enable_recovery, the tasks of chunks held by an agent on rank 0's
 * host that died fail as MPG_ERR_CANCELLED, code EHOSTDOWN, with its rank
 * and host; the map goes on over the other ranks.
 * Returns the number of failed tasks (at most INT_MAX), or -EINVAL,
 * -ENOMEM, -EMSGSIZE (@out_size, or a chunk over INT_MAX bytes), -ENOENT
 * (@fn is in no loaded module), -EIO (an MPI call failed), -EPROTO (an
 * agent's answer was malformed). Since 0.1.
 */
MPG_EXPORT int mpg_cluster_map_array(mpg_cluster *cl, mpg_task_fn fn, const void *in,
				     size_t in_size, size_t n, void *out, size_t out_size,
				     size_t chunksize, mpg_error_fn on_error, void *userdata);

#ifdef __cplusplus
}
#endif

#endif /* MPGUARD_MPI_H */
