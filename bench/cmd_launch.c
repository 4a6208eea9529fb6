/* cmd_launch.c — `focusbench launch`: runs a subcommand data-parallel, one process per GPU
 * (bench/dist_launch.h does the work; kernels/dist/ is the communicator). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench/cli.h"
#include "bench/dist_launch.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: focusbench launch --gpus N [--backend nccl|local] [--sync-bn] -- SUBCOMMAND ARGS...\n"
            "       focusbench launch --gpus N --nnodes M --node-rank K --master-addr HOST --master-port P -- ...\n\n"
            "Starts N processes of SUBCOMMAND (train, eval) on this host, one per GPU: rank r sees only GPU r\n"
            "(CUDA_VISIBLE_DEVICES; an existing list is split the same way) and gets FOCUSBENCH_RANK,\n"
            "FOCUSBENCH_WORLD_SIZE and the NCCL rendezvous in its environment; NCCL_NVLS_ENABLE=0 (no NVLink\n"
            "multicast). `train` then splits every global batch (--batch-size) over the ranks and averages the\n"
            "gradients with NCCL; `eval` splits the data and gathers the logits on rank 0. Only rank 0 writes.\n\n"
            "  --gpus N          processes on this host (one per GPU)\n"
            "  --backend B       nccl (default for N > 1) or local (one rank, no NCCL; the default for N = 1)\n"
            "  --sync-bn         synchronised batch norm (as torch.nn.SyncBatchNorm): every batch norm normalises\n"
            "                    with the mean and variance of the whole global batch (all ranks), and the running\n"
            "                    statistics follow them, so N ranks train as one GPU with the global batch; without\n"
            "                    it each GPU normalises with its own shard's statistics (the official run)\n"
            "  --nnodes M        hosts (default 1); the same command runs on each with its --node-rank\n"
            "  --node-rank K     this host's index, 0..M-1 (host K runs ranks K*N .. K*N+N-1)\n"
            "  --master-addr H   host of rank 0 (several hosts): rank 0 listens there and sends the NCCL id\n"
            "  --master-port P   its TCP port\n\n"
            "examples:\n"
            "  focusbench launch --gpus 4 -- train --preset actnet-p128 --data DIR --batch-size 64 --out run\n"
            "  focusbench launch --gpus 1 --backend nccl -- train --preset synth-tiny --synthetic 16 --epochs 1 --out r\n"
            "  focusbench launch --gpus 8 --nnodes 2 --node-rank 0 --master-addr 10.0.0.1 --master-port 29500 -- eval ...\n");
}

int cmd_launch(int argc, char **argv)
{
    LaunchArgs a;
    char err[512];
    int rc = launch_parse(argc, argv, &a, err, sizeof err);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "focusbench %s\n", err);
        return 2;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "focusbench launch: cannot find this program (/proc/self/exe)\n");
        return 1;
    }
    exe[n] = '\0';
    return launch_run(&a, exe);
}
