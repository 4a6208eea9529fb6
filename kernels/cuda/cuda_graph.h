/* cuda_graph.h — a whole inference pass captured once as a CUDA graph and replayed.
 *
 * Owns: capturing a pass (any model code run on a CUDA context, given as a callback) into a CUDA
 * graph, replaying it with one launch, and the device memory the graph's kernels use. Needs no
 * CUDA headers; exists only when the CUDA backend is built (HAVE_CUDA = 1).
 *
 * How a capture goes (cuda_graph_capture):
 *   1. warm-up: the pass runs once eagerly. This plans the activation and workspace arenas (their
 *      high-water marks), builds every cuDNN / cuBLASLt plan, loads every kernel, and measures
 *      the bytes the pass copies from the host;
 *   2. the arenas become one block each of the planned size and are frozen (an allocation beyond
 *      the plan is an error, never a cudaMalloc inside the capture), debugging's sync-after-launch
 *      is suspended, and the pass runs again under stream capture on the context's stream:
 *      nothing executes, every kernel, library call, memset and copy becomes a graph node. The
 *      capture mode is thread-local (an unsafe CUDA call from this thread breaks the capture);
 *      should a library call inside the pass break it, the capture is retried once in relaxed
 *      mode, with a note on stderr and CudaGraphInfo.relaxed set;
 *   3. the graph is instantiated and uploaded, and it takes over the arena blocks its nodes point
 *      into: later eager passes on the context get new blocks, so they can neither overwrite nor
 *      free the graph's memory, and a replay never overwrites an eager pass's outputs.
 * A replay (cuda_graph_replay) is one cudaGraphLaunch on the context's stream: no host code of the
 * model runs, nothing is allocated, and the outputs land in the same device buffers every time
 * (cuda_graph_output). Replays are bit-identical to the eager pass (the same kernels in the same
 * order on the same inputs).
 *
 * What a capturable pass must respect:
 *   - eval mode (ctx->training false): a training pass draws new random numbers every step;
 *   - no reads from the device to the host and no synchronisation (a captured stream cannot be
 *     waited for). The Uni-AdaFocus inference pass has none on CUDA: its frame sampler and patch
 *     boxes run on the device (kernels/cuda/cuda_sampler.cu). A pass that reads back fails with a
 *     message naming the read, before anything is captured;
 *   - copies FROM the host through the op table (ctx->ops->copy_from_host, e.g. the glance frame
 *     indices) are captured as constants: their bytes are staged in pinned memory the graph owns,
 *     and every replay copies those same bytes. Only data that is the same every pass may be
 *     uploaded this way (in eval mode, index tables are); per-pass data goes into the graph's
 *     inputs instead;
 *   - inputs: tensors from cuda_graph_add_input (device memory of their own, at a fixed address,
 *     owned by the graph), or any device memory that outlives the graph (uploaded parameters).
 *     Fill an input before each replay with ctx->ops->copy_from_host (ordered on the stream);
 *   - parameters the pass reads must stay uploaded (cuda_params_upload) while the graph lives;
 *   - plain C control flow only: the pass must not longjmp out (a cmocka failure inside the
 *     callback would leave the stream capturing); return false with the context's error instead.
 *
 * Destroy a graph before its context.
 */
#ifndef FOCUSBENCH_CUDA_GRAPH_H
#define FOCUSBENCH_CUDA_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/context.h"
#include "kernels/tensor.h"

enum { CUDA_GRAPH_MAX_IO = 16 }; /* inputs and outputs of one graph */

typedef struct CudaGraph CudaGraph;

/* The pass: model code on ctx that reads the graph's inputs and names its results with
 * cuda_graph_set_output. Runs twice inside cuda_graph_capture (warm-up, then captured) and must
 * do the same both times. Returns false on failure (with the context's error set). */
typedef bool (*CudaGraphPass)(Ctx *ctx, CudaGraph *g, void *user);

/* An empty graph for a CUDA context. NULL with the context's error set (not a CUDA context, a
 * failed context, out of memory). */
CudaGraph *cuda_graph_create(Ctx *ctx);
/* Waits for the stream, then frees the graph, its memory and its inputs. NULL is ignored. */
void cuda_graph_destroy(CudaGraph *g);

/* A new input: device memory of its own (uninitialised), owned by the graph, at an address that
 * never changes. Before the capture only. NULL with the context's error set. */
Tensor *cuda_graph_add_input(CudaGraph *g, DType dtype, int ndim, const int64_t *dims);

/* Inside the pass: result i (0 <= i < CUDA_GRAPH_MAX_IO) is tensor t (a device tensor of this
 * pass; NULL is recorded as missing). The graph keeps a copy of the header. */
void cuda_graph_set_output(CudaGraph *g, int i, const Tensor *t);

/* Warm-up, plan, freeze, capture, instantiate (see the file comment). Returns ctx_ok; on failure
 * nothing is captured, the context's error says why, and the graph may be captured again after
 * ctx_clear_error. */
bool cuda_graph_capture(CudaGraph *g, CudaGraphPass pass, void *user);

/* Enqueues one replay on the context's stream (asynchronous: cuda_synchronize or a download
 * waits for it). False with the context's error when not captured or on a launch failure. */
bool cuda_graph_replay(CudaGraph *g);

/* Output i of the captured pass (its header; the data is in the graph's memory and is rewritten
 * by every replay), or NULL when the pass did not set it. */
const Tensor *cuda_graph_output(const CudaGraph *g, int i);

typedef struct {
    bool captured;
    bool relaxed;            /* the thread-local capture failed inside a library call and the relaxed
                                one succeeded (a note on stderr says why) */
    size_t nodes;            /* nodes of the captured graph (kernels, library calls, memsets, copies) */
    size_t activation_bytes; /* the activation block the graph owns */
    size_t workspace_bytes;  /* the per-op workspace block it owns */
    size_t staged_bytes;     /* host → device copies captured as constants */
    int staged_copies;
    int inputs, outputs;
} CudaGraphInfo;
void cuda_graph_get_info(const CudaGraph *g, CudaGraphInfo *out);

#endif
