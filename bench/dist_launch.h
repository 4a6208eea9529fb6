/* dist_launch.h — `focusbench launch`: one process per GPU for a data-parallel subcommand.
 *
 * Owns: the launcher's options, the environment of each rank (kernels/dist/dist_rendezvous.h lists
 * the variables; NCCL_NVLS_ENABLE=0 always: no NVLink multicast), starting the ranks (fork + exec of
 * this binary) and waiting for them (one failing rank ends the others).
 *
 *   focusbench launch --gpus N [--backend nccl|local] [--sync-bn] -- SUBCOMMAND ARGS...
 *   focusbench launch --gpus N --nnodes M --node-rank K --master-addr HOST --master-port P -- ...
 *
 * One host: ranks 0…N−1, the NCCL id through a file in a private temporary directory the launcher
 * creates (and removes). Several hosts: the same command on every host with its --node-rank; host K
 * runs ranks K·N … K·N+N−1 of M·N, and rank 0 (host 0) sends the id over TCP on HOST:P.
 */
#ifndef FOCUSBENCH_DIST_LAUNCH_H
#define FOCUSBENCH_DIST_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    int gpus;                /* ranks on this host */
    int nnodes, node_rank;   /* 1, 0 on one host */
    const char *master_addr; /* several hosts */
    int master_port;
    const char *backend;     /* "nccl", "local" or NULL (nccl for more than one rank) */
    bool sync_bn;            /* --sync-bn: FOCUSBENCH_SYNC_BN=1 (synchronised batch norm: global-batch statistics) */
    int sub_argc;            /* the subcommand and its arguments (after "--") */
    char **sub_argv;
} LaunchArgs;

/* 0: parsed; −1: --help; 2: usage error (message in err). */
int launch_parse(int argc, char **argv, LaunchArgs *a, char *err, size_t err_cap);

/* Rank `local` of this host's environment entries ("NAME=value", a static buffer per call is NOT
 * used: out gets up to cap entries of at most 512 bytes each in `store`). id_file may be NULL.
 * visible: the parent's CUDA_VISIBLE_DEVICES (NULL: GPUs 0…). Returns the count, −1 on a bad
 * visible-devices list shorter than --gpus (message in err). */
int launch_rank_env(const LaunchArgs *a, int local, const char *id_file, const char *visible, char store[][512],
                    int cap, char *err, size_t err_cap);

/* Starts the ranks (exe: this binary) and waits; 0 when every rank returned 0, else the first
 * failing rank's status (1 when it died of a signal). */
int launch_run(const LaunchArgs *a, const char *exe);

#endif
