/* dist_rendezvous.h — how the processes of a data-parallel run find each other.
 *
 * Owns: the environment a rank reads (set by `focusbench launch`, bench/cmd_launch.c), passing the
 * NCCL unique id from rank 0 to the others, and the communicator built from it.
 *
 *   FOCUSBENCH_RANK, FOCUSBENCH_WORLD_SIZE   this process's rank and the number of ranks (absent:
 *                                            one rank, the local backend)
 *   FOCUSBENCH_LOCAL_RANK                    rank on this host (the GPU index when
 *                                            CUDA_VISIBLE_DEVICES lists more than one)
 *   FOCUSBENCH_DIST_BACKEND                  nccl or local (default: nccl when the world is > 1)
 *   FOCUSBENCH_ID_FILE                       one host: rank 0 writes the id there (atomically), the
 *                                            others wait for it (the launcher makes the file's
 *                                            private directory and removes it)
 *   FOCUSBENCH_MASTER_ADDR, _MASTER_PORT     several hosts: rank 0 listens on ADDR:PORT and sends the
 *                                            id to each rank that connects (TCP)
 *   FOCUSBENCH_RENDEZVOUS_TIMEOUT            seconds to wait for the id (default 300)
 */
#ifndef FOCUSBENCH_DIST_RENDEZVOUS_H
#define FOCUSBENCH_DIST_RENDEZVOUS_H

#include <stdbool.h>
#include <stddef.h>

#include "kernels/dist/dist.h"

typedef struct {
    int rank, world, local_rank;
    DistBackendKind backend;
    const char *id_file;     /* NULL: none */
    const char *master_addr; /* NULL: none */
    int master_port;
    double timeout_s;
} DistEnv;

/* Reads the variables above (getenv); false with a message on a malformed or inconsistent value. */
bool dist_env_read(DistEnv *env, char *err, size_t err_cap);

/* The id through a file: written atomically (FILE.tmp, fsync, rename), read by polling until it
 * exists or timeout_s pass. */
bool dist_id_file_write(const char *path, const DistId *id, char *err, size_t err_cap);
bool dist_id_file_read(const char *path, DistId *id, double timeout_s, char *err, size_t err_cap);

/* The id over TCP: rank 0 listens on addr:port (addr NULL or "*": every interface) and sends the id
 * to `clients` connections; the others connect (retrying until timeout_s) and receive it. The world
 * size travels with it and must match. */
bool dist_tcp_serve_id(const char *addr, int port, int clients, int world, const DistId *id, double timeout_s,
                       char *err, size_t err_cap);
bool dist_tcp_fetch_id(const char *addr, int port, int world, DistId *id, double timeout_s, char *err,
                       size_t err_cap);

/* The communicator the environment describes: the local backend for one rank (unless nccl is asked
 * for), else NCCL: rank 0 makes the id and hands it over (file or TCP), every rank joins. */
DistComm *dist_init_from_env(char *err, size_t err_cap);

#endif
