/* init.h — parameter initialisation as torchvision does it, from the project RNG.
 *
 * Owns: the initialisers the backbones use — kaiming-normal with fan_out for convolutions
 * (torchvision's MobileNetV2 and ResNet: nn.init.kaiming_normal_(mode="fan_out",
 * nonlinearity="relu"), std = √(2 / fan_out), fan_out = K·kh·kw), batch norm γ = 1, β = 0 with
 * running mean 0 and variance 1, normal(0, 0.01) linear weights with zero bias (MobileNetV2's
 * classifier), and PyTorch's default nn.Linear initialisation U(±1/√fan_in) for weight and bias
 * (ResNet's fc, which torchvision leaves at the default).
 *
 * Every tensor draws from its own stream rng_stream(seed, RNG_PURPOSE_INIT, hash(name), 0), so
 * a tensor's initial values depend only on the seed and its checkpoint key: adding a layer or
 * declaring in another order leaves every other tensor's values unchanged. The numbers are not
 * PyTorch's (a different generator); the distributions are. Tensors without host data (meta
 * backend) are left alone.
 */
#ifndef FOCUSBENCH_INIT_H
#define FOCUSBENCH_INIT_H

#include <stdint.h>

#include "impl/backbone_common.h"
#include "kernels/tensor.h"

/* The per-tensor stream key: FNV-1a (64-bit) of the tensor's name ("" when unnamed). */
uint64_t init_name_hash(const char *name);

void init_fill(Tensor *t, float value);
void init_normal(Tensor *t, uint64_t seed, float mean, float stddev);
void init_uniform(Tensor *t, uint64_t seed, float lo, float hi);
/* w: (K, C/groups, kh, kw...): normal(0, √(2 / (K·kh·kw))). */
void init_kaiming_normal_fan_out(Tensor *w, uint64_t seed);

/* Conv kaiming fan_out; γ 1, β 0, running mean 0, running variance 1 (initialise before folding). */
void init_conv_bn(const ConvBn *cb, uint64_t seed);
/* Weight normal(0, std), bias 0 (torchvision MobileNetV2 classifier: std 0.01). */
void init_linear_normal(const Linear *fc, uint64_t seed, float stddev);
/* PyTorch's nn.Linear default: weight and bias U(−1/√in, 1/√in). */
void init_linear_default(const Linear *fc, uint64_t seed);

#endif
