/* init.c — see init.h. */
#include "impl/init.h"

#include <math.h>

#include "kernels/rng.h"

uint64_t init_name_hash(const char *name)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a offset basis */
    for (const unsigned char *p = (const unsigned char *)(name ? name : ""); *p; p++) {
        h ^= *p;
        h *= 1099511628211ull; /* FNV prime */
    }
    return h;
}

/* Host f32 data of t, or NULL when there is none to write (meta backend, other dtypes). */
static float *host_f32(Tensor *t)
{
    if (!t || t->backend != BACKEND_CPU || !t->data || t->dtype != DTYPE_F32)
        return NULL;
    return tensor_f32(t);
}

static RngStream stream_for(const Tensor *t, uint64_t seed)
{
    return rng_stream(seed, RNG_PURPOSE_INIT, init_name_hash(t->name), 0);
}

void init_fill(Tensor *t, float value)
{
    float *p = host_f32(t); /* (numel) */
    if (!p)
        return;
    for (int64_t i = 0; i < tensor_numel(t); i++)
        p[i] = value;
}

void init_normal(Tensor *t, uint64_t seed, float mean, float stddev)
{
    float *p = host_f32(t); /* (numel) */
    if (!p)
        return;
    RngStream s = stream_for(t, seed);
    for (int64_t i = 0; i < tensor_numel(t); i++)
        p[i] = mean + stddev * rng_normal(&s, (uint64_t)i);
}

void init_uniform(Tensor *t, uint64_t seed, float lo, float hi)
{
    float *p = host_f32(t); /* (numel) */
    if (!p)
        return;
    RngStream s = stream_for(t, seed);
    for (int64_t i = 0; i < tensor_numel(t); i++)
        p[i] = lo + (hi - lo) * rng_uniform(&s, (uint64_t)i);
}

void init_kaiming_normal_fan_out(Tensor *w, uint64_t seed)
{
    if (!w || w->ndim < 2)
        return;
    /* PyTorch's _calculate_fan_in_and_fan_out: fan_out = size(0) · receptive field (the group
     * count does not enter); gain √2 for relu. */
    double fan_out = (double)w->shape[0] * (double)tensor_span(w, 2, w->ndim);
    init_normal(w, seed, 0.0f, (float)sqrt(2.0 / fan_out));
}

void init_conv_bn(const ConvBn *cb, uint64_t seed)
{
    init_kaiming_normal_fan_out(cb->weight, seed);
    init_fill(cb->gamma, 1.0f);
    init_fill(cb->beta, 0.0f);
    init_fill(cb->running_mean, 0.0f);
    init_fill(cb->running_var, 1.0f);
}

void init_linear_normal(const Linear *fc, uint64_t seed, float stddev)
{
    init_normal(fc->weight, seed, 0.0f, stddev);
    init_fill(fc->bias, 0.0f);
}

void init_linear_default(const Linear *fc, uint64_t seed)
{
    /* kaiming_uniform_(a = √5) gives bound gain·√(3/fan_in) with gain √(2/(1+5)): 1/√fan_in;
     * the bias uses the same bound. */
    float bound = (float)(1.0 / sqrt((double)fc->weight->shape[1]));
    init_uniform(fc->weight, seed, -bound, bound);
    init_uniform(fc->bias, seed, -bound, bound);
}
