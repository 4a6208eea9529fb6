/* dist_launch.c — see dist_launch.h. */
#include "dist_launch.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/parse_num.h"

extern char **environ;

int launch_parse(int argc, char **argv, LaunchArgs *a, char *err, size_t err_cap)
{
    *a = (LaunchArgs){.gpus = 0, .nnodes = 1, .node_rank = 0, .master_port = 0};
    int i = 1;
    bool have_gpus = false, have_sep = false;
    for (; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--") == 0) {
            have_sep = true;
            i++;
            break;
        }
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0)
            return -1;
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--gpus") == 0 || strcmp(o, "--nnodes") == 0 || strcmp(o, "--node-rank") == 0 ||
            strcmp(o, "--master-port") == 0 || strcmp(o, "--master-addr") == 0 || strcmp(o, "--backend") == 0) {
            if (!v) {
                snprintf(err, err_cap, "launch: %s needs a value", o);
                return 2;
            }
            i++;
        }
        if (strcmp(o, "--gpus") == 0) {
            if (!parse_int_in(v, 1, 1024, &a->gpus)) {
                snprintf(err, err_cap, "launch: --gpus \"%s\": need a GPU count of at least 1", v);
                return 2;
            }
            have_gpus = true;
        } else if (strcmp(o, "--nnodes") == 0) {
            if (!parse_int_in(v, 1, 65536, &a->nnodes)) {
                snprintf(err, err_cap, "launch: --nnodes \"%s\": need a host count of at least 1", v);
                return 2;
            }
        } else if (strcmp(o, "--node-rank") == 0) {
            if (!parse_int_in(v, 0, 65535, &a->node_rank)) {
                snprintf(err, err_cap, "launch: --node-rank \"%s\": need 0 or more", v);
                return 2;
            }
        } else if (strcmp(o, "--master-port") == 0) {
            if (!parse_int_in(v, 1, 65535, &a->master_port)) {
                snprintf(err, err_cap, "launch: --master-port \"%s\": need a TCP port 1..65535", v);
                return 2;
            }
        } else if (strcmp(o, "--master-addr") == 0) {
            a->master_addr = v;
        } else if (strcmp(o, "--sync-bn") == 0) {
            a->sync_bn = true;
        } else if (strcmp(o, "--backend") == 0) {
            if (strcmp(v, "nccl") != 0 && strcmp(v, "local") != 0) {
                snprintf(err, err_cap, "launch: --backend \"%s\": nccl or local", v);
                return 2;
            }
            a->backend = v;
        } else {
            snprintf(err, err_cap, "launch: unknown option %s (the subcommand's arguments go after \"--\")", o);
            return 2;
        }
    }
    if (!have_gpus) {
        snprintf(err, err_cap, "launch: --gpus N is required");
        return 2;
    }
    if (!have_sep) {
        snprintf(err, err_cap, "launch: missing \"--\" before the subcommand (focusbench launch --gpus N -- train ...)");
        return 2;
    }
    if (i >= argc) {
        snprintf(err, err_cap, "launch: no subcommand after \"--\"");
        return 2;
    }
    if (strcmp(argv[i], "launch") == 0) {
        snprintf(err, err_cap, "launch: the subcommand cannot be launch itself");
        return 2;
    }
    if (a->node_rank >= a->nnodes) {
        snprintf(err, err_cap, "launch: --node-rank %d is not below --nnodes %d", a->node_rank, a->nnodes);
        return 2;
    }
    if (a->nnodes > 1 && (!a->master_addr || !a->master_port)) {
        snprintf(err, err_cap, "launch: %d hosts need --master-addr HOST and --master-port P (rank 0's host, where it "
                 "sends the NCCL id)", a->nnodes);
        return 2;
    }
    if (a->backend && strcmp(a->backend, "local") == 0 && a->gpus * a->nnodes > 1) {
        snprintf(err, err_cap, "launch: --backend local runs one rank; %d ranks need nccl", a->gpus * a->nnodes);
        return 2;
    }
    a->sub_argc = argc - i;
    a->sub_argv = argv + i;
    return 0;
}

/* The visible device of local rank `local`: the parent's list entry, or the index itself. */
static bool device_of(const char *visible, int local, char *out, size_t cap)
{
    if (!visible || !*visible) {
        snprintf(out, cap, "%d", local);
        return true;
    }
    const char *p = visible;
    for (int k = 0; k < local; k++) {
        p = strchr(p, ',');
        if (!p)
            return false;
        p++;
    }
    size_t n = strcspn(p, ",");
    if (n == 0 || n >= cap)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

int launch_rank_env(const LaunchArgs *a, int local, const char *id_file, const char *visible, char store[][512],
                    int cap, char *err, size_t err_cap)
{
    char dev[128];
    if (!device_of(visible, local, dev, sizeof dev)) {
        snprintf(err, err_cap, "launch: CUDA_VISIBLE_DEVICES=\"%s\" lists fewer than --gpus %d devices", visible,
                 a->gpus);
        return -1;
    }
    int world = a->gpus * a->nnodes, rank = a->node_rank * a->gpus + local, n = 0;
    const char *backend = a->backend ? a->backend : world > 1 ? "nccl" : "local";
#define PUT(...)                                                                                              \
    do {                                                                                                      \
        if (n < cap)                                                                                          \
            snprintf(store[n++], 512, __VA_ARGS__);                                                           \
    } while (0)
    PUT("FOCUSBENCH_RANK=%d", rank);
    PUT("FOCUSBENCH_WORLD_SIZE=%d", world);
    PUT("FOCUSBENCH_LOCAL_RANK=%d", local);
    PUT("FOCUSBENCH_DIST_BACKEND=%s", backend);
    PUT("CUDA_VISIBLE_DEVICES=%s", dev);
    PUT("NCCL_NVLS_ENABLE=0"); /* no NVLink multicast (SHARP) buffers */
    PUT("FOCUSBENCH_SYNC_BN=%d", a->sync_bn ? 1 : 0);
    if (a->nnodes > 1) {
        PUT("FOCUSBENCH_MASTER_ADDR=%s", a->master_addr);
        PUT("FOCUSBENCH_MASTER_PORT=%d", a->master_port);
    } else if (id_file) {
        PUT("FOCUSBENCH_ID_FILE=%s", id_file);
    }
#undef PUT
    return n;
}

static const char *const OURS[] = {"FOCUSBENCH_RANK=", "FOCUSBENCH_WORLD_SIZE=", "FOCUSBENCH_LOCAL_RANK=",
                                   "FOCUSBENCH_DIST_BACKEND=", "CUDA_VISIBLE_DEVICES=", "NCCL_NVLS_ENABLE=",
                                   "FOCUSBENCH_MASTER_ADDR=", "FOCUSBENCH_MASTER_PORT=", "FOCUSBENCH_ID_FILE=",
                                   "FOCUSBENCH_SYNC_BN="};

static bool overridden(const char *entry)
{
    for (size_t k = 0; k < sizeof OURS / sizeof OURS[0]; k++)
        if (strncmp(entry, OURS[k], strlen(OURS[k])) == 0)
            return true;
    return false;
}

int launch_run(const LaunchArgs *a, const char *exe)
{
    char dir[] = "/tmp/focusbench-launch-XXXXXX", id_file[600];
    if (!mkdtemp(dir)) {
        fprintf(stderr, "focusbench launch: cannot create a rendezvous directory under /tmp: %s\n", strerror(errno));
        return 1;
    }
    snprintf(id_file, sizeof id_file, "%s/nccl_id", dir);
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    size_t n_env = 0;
    while (environ[n_env])
        n_env++;
    pid_t *pids = calloc((size_t)a->gpus, sizeof *pids);
    char (*store)[512] = calloc(16, 512);
    char **env = calloc(n_env + 17, sizeof *env);
    char **args = calloc((size_t)a->sub_argc + 2, sizeof *args);
    int rc = 0;
    if (!pids || !store || !env || !args) {
        fprintf(stderr, "focusbench launch: out of memory\n");
        rc = 1;
        goto done;
    }
    args[0] = (char *)exe;
    for (int k = 0; k < a->sub_argc; k++)
        args[k + 1] = a->sub_argv[k];
    int started = 0;
    for (int local = 0; local < a->gpus; local++) {
        char e[256];
        int m = launch_rank_env(a, local, id_file, visible, store, 16, e, sizeof e);
        if (m < 0) {
            fprintf(stderr, "focusbench %s\n", e);
            rc = 2;
            break;
        }
        size_t k = 0;
        for (size_t j = 0; j < n_env; j++)
            if (!overridden(environ[j]))
                env[k++] = environ[j];
        for (int j = 0; j < m; j++)
            env[k++] = store[j];
        env[k] = NULL;
        fflush(NULL);
        pid_t p = fork();
        if (p < 0) {
            fprintf(stderr, "focusbench launch: fork of rank %d failed: %s\n", a->node_rank * a->gpus + local,
                    strerror(errno));
            rc = 1;
            break;
        }
        if (p == 0) {
            execve(exe, args, env);
            fprintf(stderr, "focusbench launch: cannot run %s: %s\n", exe, strerror(errno));
            _exit(127);
        }
        pids[started++] = p;
    }
    /* wait for every rank; the first failure ends the others (they would wait for it forever) */
    for (int left = started; left > 0; left--) {
        int status;
        pid_t p = waitpid(-1, &status, 0);
        if (p < 0) {
            if (errno == EINTR) {
                left++;
                continue;
            }
            break;
        }
        int who = -1;
        for (int k = 0; k < started; k++)
            if (pids[k] == p)
                who = k, pids[k] = 0;
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
        if (code != 0 && rc == 0) {
            fprintf(stderr, "focusbench launch: rank %d %s %d; stopping the other ranks\n",
                    a->node_rank * a->gpus + who, WIFEXITED(status) ? "exited with status" : "died of signal",
                    WIFEXITED(status) ? code : WTERMSIG(status));
            rc = code;
            for (int k = 0; k < started; k++)
                if (pids[k] > 0)
                    kill(pids[k], SIGTERM);
        }
    }
    if (rc == 0 && started < a->gpus)
        rc = 1;
done:
    unlink(id_file);
    rmdir(dir);
    free(pids);
    free(store);
    free(env);
    free(args);
    return rc;
}
