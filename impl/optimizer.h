/* optimizer.h — SGD with momentum and weight decay, exactly as torch.optim.SGD, with parameter
 * groups, per-group learning-rate multipliers and the official per-epoch schedule.
 *
 * Owns: the update of a ParamSet's trainable tensors from their gradients, the groups (which
 * parameter gets which multiplier, chosen by checkpoint-key prefix), the learning rate of each
 * epoch, and the optimizer state (momentum buffers) for checkpoints.
 *
 * The update, per trainable parameter p with gradient g, in float32 as PyTorch computes it
 * (torch.optim.SGD, dampening 0, no Nesterov; ATen's add with alpha is a fused multiply-add):
 *     d   = g + wd·p                    fmaf(wd, p, g)                     (wd = weight_decay × decay_mult)
 *     buf = d                           on the first step (PyTorch's buffer starts as a clone of d)
 *     buf = buf·momentum + d            afterwards (two roundings: mul_, then add_)
 *     p   = p − lr·buf                  fmaf(−lr, buf, p)                  (lr = the group's rate)
 * Scalars are rounded to float32 once, as ATen does with a Python float. Buffers (batch-norm
 * running statistics) and non-trainable tensors are never touched. PyTorch skips a parameter
 * whose .grad is None; here every trainable tensor owns a gradient (zero when unused), so every
 * one is updated (and decayed) each step — identical for a model whose every trainable
 * parameter takes part in the loss, as the official Uni-AdaFocus does.
 *
 * Schedule (the official adjust_learning_rate, called at the start of every epoch e = 0 … E−1):
 *     cosine  lr(e) = 0.5 · lr0 · (1 + cos(π·e/E))          computed in double
 *     step    lr(e) = lr0 · 0.1^(number of steps s with e >= s)
 *     constant lr(e) = lr0
 * then group lr = lr(e) × lr_mult and group wd = weight_decay × decay_mult, in double.
 *
 * Where: the update runs through the backend op table (kernels/backend.h sgd_update) on the memory
 * the parameters live in: the host by default, or a device after the parameters, their gradients
 * and the momentum buffers (Sgd.state) were moved there (kernels/device.h) and sgd_set_device named
 * its context. The CUDA kernel rounds exactly as the CPU loop, so an update is bit-identical.
 */
#ifndef FOCUSBENCH_OPTIMIZER_H
#define FOCUSBENCH_OPTIMIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/context.h"
#include "kernels/params.h"

enum { SGD_MAX_GROUPS = 16, SGD_MAX_PREFIXES = 4, SGD_MAX_LR_STEPS = 8 };

typedef enum {
    SGD_SCHEDULE_COSINE = 0, /* the official --lr_type cos */
    SGD_SCHEDULE_STEP,       /* --lr_type step with --lr_steps */
    SGD_SCHEDULE_CONSTANT,
} SgdSchedule;

/* One parameter group: every trainable tensor whose key starts with one of `prefixes`. */
typedef struct {
    const char *name;                         /* as the official group names: "temporal_policy", … */
    const char *prefixes[SGD_MAX_PREFIXES];   /* NULL-terminated (unused slots NULL) */
    double lr_mult;
    double decay_mult;
} SgdGroup;

typedef struct {
    double lr;           /* base learning rate (args.lr) */
    double momentum;     /* 0.9 */
    double weight_decay; /* args.weight_decay */
    SgdSchedule schedule;
    int epochs;          /* E of the cosine schedule */
    double lr_steps[SGD_MAX_LR_STEPS]; /* step schedule: epochs where the rate drops 10× */
    int n_lr_steps;
} SgdConfig;

typedef struct {
    SgdGroup group;
    double lr;           /* the current rate (set by sgd_set_epoch) */
    double weight_decay; /* the current decay */
    int n_params;        /* trainable tensors in the group */
} SgdGroupState;

typedef struct {
    SgdConfig cfg;
    ParamSet *ps;           /* borrowed: the model's parameters */
    int n;                  /* trainable tensors */
    Tensor **params;        /* [n] in the ParamSet's order */
    int *group_of;          /* [n] */
    ParamSet *state;        /* owned: one momentum buffer per trainable tensor, same key, same order */
    SgdGroupState groups[SGD_MAX_GROUPS];
    int n_groups;
    int64_t steps;          /* sgd_step calls so far (0: buffers not yet created) */
    int epoch;              /* the epoch of the current rates (−1 before sgd_set_epoch) */
    Ctx *device;            /* borrowed: the device context the tensors live on, NULL on the host */
} Sgd;

/* Builds the optimizer over ps's trainable tensors. Every trainable tensor must match exactly
 * one group (the first whose prefix matches; none matching is an error naming the key). False
 * with a message in err on a bad configuration. */
Sgd *sgd_create(ParamSet *ps, const SgdConfig *cfg, const SgdGroup *groups, int n_groups, char *err, size_t err_cap);
void sgd_destroy(Sgd *opt);

/* The base rate of epoch e under the schedule (before group multipliers). */
double sgd_schedule_lr(const SgdConfig *cfg, int epoch);
/* Sets every group's lr and weight decay for epoch e. */
void sgd_set_epoch(Sgd *opt, int epoch);

/* The tensors (parameters, gradients, momentum buffers) now live on ctx's device (NULL or a CPU
 * context: the host). */
void sgd_set_device(Sgd *opt, Ctx *ctx);

/* One update from the current gradients (the caller zeroes them afterwards). False with a
 * message when a gradient is missing or the parameters are not on the host. */
bool sgd_step(Sgd *opt, char *err, size_t err_cap);

/* The group of the tensor named key, or −1. */
int sgd_group_of(const Sgd *opt, const char *key);

#endif
