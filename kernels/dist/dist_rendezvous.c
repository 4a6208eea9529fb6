/* dist_rendezvous.c — see dist_rendezvous.h. */
#include "dist_rendezvous.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char MAGIC[8] = {'F', 'B', 'N', 'C', 'C', 'L', 'I', 'D'};
enum { MSG_BYTES = 8 + 4 + DIST_ID_BYTES }; /* magic, world (big endian), id */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static bool env_int(const char *name, int lo, int hi, int *out, bool *present, char *err, size_t err_cap)
{
    const char *v = getenv(name);
    *present = v && *v;
    if (!*present)
        return true;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < lo || x > hi) {
        snprintf(err, err_cap, "%s=\"%s\": need an integer in %d..%d", name, v, lo, hi);
        return false;
    }
    *out = (int)x;
    return true;
}

bool dist_env_read(DistEnv *env, char *err, size_t err_cap)
{
    *env = (DistEnv){.rank = 0, .world = 1, .local_rank = 0, .backend = DIST_BACKEND_LOCAL, .timeout_s = 300};
    bool has_rank, has_world, has_local, has_port, has_timeout;
    int timeout = 300;
    if (!env_int("FOCUSBENCH_WORLD_SIZE", 1, 1 << 20, &env->world, &has_world, err, err_cap) ||
        !env_int("FOCUSBENCH_RANK", 0, 1 << 20, &env->rank, &has_rank, err, err_cap) ||
        !env_int("FOCUSBENCH_LOCAL_RANK", 0, 1 << 20, &env->local_rank, &has_local, err, err_cap) ||
        !env_int("FOCUSBENCH_MASTER_PORT", 1, 65535, &env->master_port, &has_port, err, err_cap) ||
        !env_int("FOCUSBENCH_RENDEZVOUS_TIMEOUT", 1, 1 << 24, &timeout, &has_timeout, err, err_cap))
        return false;
    env->timeout_s = timeout;
    if (has_rank != has_world) {
        snprintf(err, err_cap, "FOCUSBENCH_RANK and FOCUSBENCH_WORLD_SIZE go together (set by `focusbench launch`); "
                 "only %s is set", has_rank ? "FOCUSBENCH_RANK" : "FOCUSBENCH_WORLD_SIZE");
        return false;
    }
    if (env->rank >= env->world) {
        snprintf(err, err_cap, "FOCUSBENCH_RANK=%d is not below FOCUSBENCH_WORLD_SIZE=%d", env->rank, env->world);
        return false;
    }
    if (!has_local)
        env->local_rank = env->rank;
    const char *b = getenv("FOCUSBENCH_DIST_BACKEND");
    if (b && *b) {
        if (strcmp(b, "nccl") == 0)
            env->backend = DIST_BACKEND_NCCL;
        else if (strcmp(b, "local") == 0)
            env->backend = DIST_BACKEND_LOCAL;
        else {
            snprintf(err, err_cap, "FOCUSBENCH_DIST_BACKEND=\"%s\": nccl or local", b);
            return false;
        }
    } else if (env->world > 1) {
        env->backend = DIST_BACKEND_NCCL;
    }
    if (env->backend == DIST_BACKEND_LOCAL && env->world > 1) {
        snprintf(err, err_cap, "the local backend has one rank, but FOCUSBENCH_WORLD_SIZE=%d: use the nccl backend",
                 env->world);
        return false;
    }
    const char *f = getenv("FOCUSBENCH_ID_FILE"), *a = getenv("FOCUSBENCH_MASTER_ADDR");
    env->id_file = f && *f ? f : NULL;
    env->master_addr = a && *a ? a : NULL;
    if (env->master_addr && !has_port) {
        snprintf(err, err_cap, "FOCUSBENCH_MASTER_ADDR=%s needs FOCUSBENCH_MASTER_PORT", env->master_addr);
        return false;
    }
    return true;
}

/* ---- the id in a file ------------------------------------------------------------------------ */

static void to_hex(const DistId *id, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < DIST_ID_BYTES; i++) {
        hex[2 * i] = digits[id->bytes[i] >> 4];
        hex[2 * i + 1] = digits[id->bytes[i] & 15];
    }
    hex[2 * DIST_ID_BYTES] = '\n';
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool dist_id_file_write(const char *path, const DistId *id, char *err, size_t err_cap)
{
    char tmp[4096], hex[2 * DIST_ID_BYTES + 1];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, err_cap, "rendezvous: id file path too long");
        return false;
    }
    to_hex(id, hex);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        snprintf(err, err_cap, "rendezvous: cannot create %s: %s", tmp, strerror(errno));
        return false;
    }
    bool ok = write(fd, hex, sizeof hex) == (ssize_t)sizeof hex && fsync(fd) == 0;
    int saved = errno;
    ok = close(fd) == 0 && ok;
    if (ok && rename(tmp, path) != 0) {
        saved = errno;
        ok = false;
    }
    if (!ok) {
        unlink(tmp);
        snprintf(err, err_cap, "rendezvous: cannot write the NCCL id to %s: %s", path, strerror(saved));
    }
    return ok;
}

bool dist_id_file_read(const char *path, DistId *id, double timeout_s, char *err, size_t err_cap)
{
    double t0 = now_s();
    for (;;) {
        FILE *f = fopen(path, "rb");
        if (f) {
            char hex[2 * DIST_ID_BYTES + 1];
            size_t got = fread(hex, 1, sizeof hex, f);
            fclose(f);
            bool ok = got == sizeof hex && hex[2 * DIST_ID_BYTES] == '\n';
            for (int i = 0; ok && i < DIST_ID_BYTES; i++) {
                int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
                ok = hi >= 0 && lo >= 0;
                id->bytes[i] = (unsigned char)(hi << 4 | lo);
            }
            if (!ok) {
                snprintf(err, err_cap, "rendezvous: %s is not an id file (%zu bytes)", path, got);
                return false;
            }
            return true;
        }
        if (errno != ENOENT) {
            snprintf(err, err_cap, "rendezvous: cannot read %s: %s", path, strerror(errno));
            return false;
        }
        if (now_s() - t0 > timeout_s) {
            snprintf(err, err_cap, "rendezvous: no id in %s after %.0f s (did rank 0 start?)", path, timeout_s);
            return false;
        }
        sleep_ms(20);
    }
}

/* ---- the id over TCP --------------------------------------------------------------------------- */

static bool write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        c += w, n -= (size_t)w;
    }
    return true;
}

static bool read_all(int fd, void *p, size_t n, double deadline)
{
    char *c = p;
    while (n) {
        int ms = (int)((deadline - now_s()) * 1000);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (ms <= 0 || poll(&pfd, 1, ms) <= 0)
            return false;
        ssize_t r = recv(fd, c, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        c += r, n -= (size_t)r;
    }
    return true;
}

static struct addrinfo *resolve(const char *addr, int port, bool passive, char *err, size_t err_cap)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(addr && strcmp(addr, "*") != 0 ? addr : NULL, ps, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_cap, "rendezvous: cannot resolve %s:%d: %s", addr ? addr : "*", port, gai_strerror(rc));
        return NULL;
    }
    return res;
}

bool dist_tcp_serve_id(const char *addr, int port, int clients, int world, const DistId *id, double timeout_s,
                       char *err, size_t err_cap)
{
    struct addrinfo *res = resolve(addr, port, true, err, err_cap);
    if (!res)
        return false;
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, clients > 0 ? clients : 1) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, err_cap, "rendezvous: rank 0 cannot listen on %s:%d: %s (port in use? choose another "
                 "--master-port)", addr ? addr : "*", port, strerror(saved));
        return false;
    }
    unsigned char msg[MSG_BYTES];
    memcpy(msg, MAGIC, 8);
    uint32_t w = htonl((uint32_t)world);
    memcpy(msg + 8, &w, 4);
    memcpy(msg + 12, id->bytes, DIST_ID_BYTES);
    double deadline = now_s() + timeout_s;
    bool ok = true;
    for (int k = 0; ok && k < clients; k++) {
        int ms = (int)((deadline - now_s()) * 1000);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (ms <= 0 || poll(&pfd, 1, ms) <= 0) {
            snprintf(err, err_cap, "rendezvous: rank 0 heard from %d of %d ranks on port %d in %.0f s", k, clients,
                     port, timeout_s);
            ok = false;
            break;
        }
        int c = accept(fd, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                k--;
                continue;
            }
            snprintf(err, err_cap, "rendezvous: accept on port %d: %s", port, strerror(errno));
            ok = false;
            break;
        }
        if (!write_all(c, msg, sizeof msg)) {
            snprintf(err, err_cap, "rendezvous: sending the id to a rank failed: %s", strerror(errno));
            ok = false;
        }
        close(c);
    }
    close(fd);
    return ok;
}

bool dist_tcp_fetch_id(const char *addr, int port, int world, DistId *id, double timeout_s, char *err,
                       size_t err_cap)
{
    double deadline = now_s() + timeout_s;
    for (;;) {
        struct addrinfo *res = resolve(addr, port, false, err, err_cap);
        if (!res)
            return false;
        int fd = -1;
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
                close(fd);
                fd = -1;
            }
        }
        freeaddrinfo(res);
        if (fd >= 0) {
            unsigned char msg[MSG_BYTES];
            bool got = read_all(fd, msg, sizeof msg, deadline);
            close(fd);
            if (!got) {
                snprintf(err, err_cap, "rendezvous: %s:%d closed before sending the id", addr, port);
                return false;
            }
            uint32_t w;
            memcpy(&w, msg + 8, 4);
            if (memcmp(msg, MAGIC, 8) != 0) {
                snprintf(err, err_cap, "rendezvous: %s:%d is not a focusbench rank 0", addr, port);
                return false;
            }
            if ((int)ntohl(w) != world) {
                snprintf(err, err_cap, "rendezvous: rank 0 at %s:%d runs %u ranks, this process %d", addr, port,
                         ntohl(w), world);
                return false;
            }
            memcpy(id->bytes, msg + 12, DIST_ID_BYTES);
            return true;
        }
        if (now_s() > deadline) {
            snprintf(err, err_cap, "rendezvous: no rank 0 listening on %s:%d after %.0f s", addr, port, timeout_s);
            return false;
        }
        sleep_ms(50);
    }
}

/* ---- the communicator ------------------------------------------------------------------------- */

DistComm *dist_init_from_env(char *err, size_t err_cap)
{
    DistEnv env;
    if (!dist_env_read(&env, err, err_cap))
        return NULL;
    if (env.backend == DIST_BACKEND_LOCAL) {
        DistComm *c = dist_create_local();
        if (!c)
            snprintf(err, err_cap, "out of memory");
        return c;
    }
    if (!dist_nccl_available(err, err_cap))
        return NULL;
    if (env.world > 1 && !env.id_file && !env.master_addr) {
        snprintf(err, err_cap, "rank %d of %d: no rendezvous (FOCUSBENCH_ID_FILE or FOCUSBENCH_MASTER_ADDR/PORT); "
                 "start the ranks with `focusbench launch`", env.rank, env.world);
        return NULL;
    }
    DistId id;
    bool ok;
    if (env.rank == 0) {
        ok = dist_nccl_unique_id(&id, err, err_cap);
        if (ok && env.world > 1)
            ok = env.id_file ? dist_id_file_write(env.id_file, &id, err, err_cap)
                             : dist_tcp_serve_id(NULL, env.master_port, env.world - 1, env.world, &id, env.timeout_s,
                                                 err, err_cap);
    } else {
        ok = env.id_file ? dist_id_file_read(env.id_file, &id, env.timeout_s, err, err_cap)
                         : dist_tcp_fetch_id(env.master_addr, env.master_port, env.world, &id, env.timeout_s, err,
                                             err_cap);
    }
    if (!ok)
        return NULL;
    /* the launcher gives each rank one GPU (CUDA_VISIBLE_DEVICES); otherwise the local rank picks it */
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    int device = vis && *vis && !strchr(vis, ',') ? 0 : env.local_rank;
    return dist_create_nccl(env.rank, env.world, device, &id, err, err_cap);
}
