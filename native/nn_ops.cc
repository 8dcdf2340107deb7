// Neural-network ops: convolution, pooling, normalisation, activations, losses, resampling.
#include "binding.h"

namespace tapir {

#define RET(expr) return Wrap(info.Env(), (expr))

static Napi::Value conv2d(const Napi::CallbackInfo& info) {
  // conv2d(x, w, b?, stride, padding, dilation, groups)
  RET(at::conv2d(T(info, 0), T(info, 1), OT(info, 2), IsNil(info, 3) ? std::vector<int64_t>{1} : IL(info, 3),
                 IsNil(info, 4) ? std::vector<int64_t>{0} : IL(info, 4), IsNil(info, 5) ? std::vector<int64_t>{1} : IL(info, 5),
                 IsNil(info, 6) ? 1 : I(info, 6)));
}
static Napi::Value linear(const Napi::CallbackInfo& info) { RET(at::linear(T(info, 0), T(info, 1), OT(info, 2))); }
static Napi::Value unfold(const Napi::CallbackInfo& info) {
  // unfold(x, kernel, dilation, padding, stride): im2col, [N, C, H, W] -> [N, C*kh*kw, L]
  RET(at::im2col(T(info, 0), IL(info, 1), IL(info, 2), IL(info, 3), IL(info, 4)));
}

static Napi::Value maxPool2d(const Napi::CallbackInfo& info) {
  // maxPool2d(x, kernel, stride, padding, dilation, ceilMode)
  auto k = IL(info, 1);
  RET(at::max_pool2d(T(info, 0), k, IsNil(info, 2) ? k : IL(info, 2), IsNil(info, 3) ? std::vector<int64_t>{0} : IL(info, 3),
                     IsNil(info, 4) ? std::vector<int64_t>{1} : IL(info, 4), !IsNil(info, 5) && B(info, 5)));
}
static Napi::Value avgPool2d(const Napi::CallbackInfo& info) {
  // avgPool2d(x, kernel, stride, padding, ceilMode, countIncludePad)
  auto k = IL(info, 1);
  RET(at::avg_pool2d(T(info, 0), k, IsNil(info, 2) ? k : IL(info, 2), IsNil(info, 3) ? std::vector<int64_t>{0} : IL(info, 3),
                     !IsNil(info, 4) && B(info, 4), IsNil(info, 5) || B(info, 5)));
}
static Napi::Value adaptiveAvgPool2d(const Napi::CallbackInfo& info) { RET(at::adaptive_avg_pool2d(T(info, 0), IL(info, 1))); }

static Napi::Value batchNorm(const Napi::CallbackInfo& info) {
  // batchNorm(x, weight?, bias?, runningMean?, runningVar?, training, momentum, eps)
  // In training mode the running statistics are updated in place.
  RET(at::batch_norm(T(info, 0), OT(info, 1), OT(info, 2), OT(info, 3), OT(info, 4), B(info, 5), D(info, 6), D(info, 7), true));
}
static Napi::Value layerNorm(const Napi::CallbackInfo& info) {
  RET(at::layer_norm(T(info, 0), IL(info, 1), OT(info, 2), OT(info, 3), IsNil(info, 4) ? 1e-5 : D(info, 4)));
}

#define UNARY(name, expr) \
  static Napi::Value name(const Napi::CallbackInfo& info) { RET(expr); }
UNARY(relu, at::relu(T(info, 0)))
UNARY(relu6, at::hardtanh(T(info, 0), 0, 6))
UNARY(silu, at::silu(T(info, 0)))
UNARY(sigmoid, at::sigmoid(T(info, 0)))
UNARY(tanh, at::tanh(T(info, 0)))
UNARY(hardtanh, at::hardtanh(T(info, 0), S(info, 1), S(info, 2)))
UNARY(leakyRelu, at::leaky_relu(T(info, 0), IsNil(info, 1) ? at::Scalar(0.01) : S(info, 1)))
UNARY(gelu, at::gelu(T(info, 0), IsNil(info, 1) ? "none" : Str(info, 1)))
UNARY(softmax, at::softmax(T(info, 0), I(info, 1)))
UNARY(logSoftmax, at::log_softmax(T(info, 0), I(info, 1)))
#undef UNARY

static int64_t Reduction(const Napi::CallbackInfo& info, size_t i) {
  if (IsNil(info, i)) return at::Reduction::Mean;
  std::string r = Str(info, i);
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  throw ArgError("reduction must be 'mean', 'sum' or 'none', got '" + r + "'");
}

static Napi::Value crossEntropy(const Napi::CallbackInfo& info) {
  // crossEntropy(logits [N,C], target [N] int64 or [N,C] probabilities, reduction, labelSmoothing)
  RET(at::cross_entropy_loss(T(info, 0), T(info, 1), c10::nullopt, Reduction(info, 2), -100, IsNil(info, 3) ? 0.0 : D(info, 3)));
}
static Napi::Value mseLoss(const Napi::CallbackInfo& info) { RET(at::mse_loss(T(info, 0), T(info, 1), Reduction(info, 2))); }
static Napi::Value nllLoss(const Napi::CallbackInfo& info) { RET(at::nll_loss(T(info, 0), T(info, 1), c10::nullopt, Reduction(info, 2))); }
static Napi::Value dropout(const Napi::CallbackInfo& info) { RET(at::dropout(T(info, 0), D(info, 1), B(info, 2))); }
static Napi::Value oneHot(const Napi::CallbackInfo& info) { RET(at::one_hot(T(info, 0), I(info, 1))); }

static Napi::Value pad(const Napi::CallbackInfo& info) {
  // pad(x, pads (last dim first, as torch.nn.functional.pad), mode, value)
  std::string mode = IsNil(info, 2) ? "constant" : Str(info, 2);
  auto pads = IL(info, 1);
  const at::Tensor& x = T(info, 0);
  if (mode == "constant") RET(at::constant_pad_nd(x, pads, IsNil(info, 3) ? at::Scalar(0) : S(info, 3)));
  if (x.dim() != 4 || pads.size() != 4) throw ArgError("pad mode '" + mode + "' needs a 4-D input and 4 pads");
  if (mode == "reflect") RET(at::reflection_pad2d(x, pads));
  if (mode == "replicate") RET(at::replication_pad2d(x, pads));
  throw ArgError("pad mode must be 'constant', 'reflect' or 'replicate', got '" + mode + "'");
}

static Napi::Value interpolateBilinear(const Napi::CallbackInfo& info) {
  // interpolateBilinear(x [N,C,H,W], [outH, outW], alignCorners, antialias)
  bool align = !IsNil(info, 2) && B(info, 2);
  bool antialias = !IsNil(info, 3) && B(info, 3);
  if (antialias) RET(at::_upsample_bilinear2d_aa(T(info, 0), IL(info, 1), align, c10::nullopt, c10::nullopt));
  RET(at::upsample_bilinear2d(T(info, 0), IL(info, 1), align, c10::nullopt, c10::nullopt));
}
static Napi::Value interpolateNearest(const Napi::CallbackInfo& info) {
  RET(at::upsample_nearest2d(T(info, 0), IL(info, 1), c10::nullopt, c10::nullopt));
}

#define E(name) TAPIR_OP(name)
static const OpDef kNNOps[] = {
    E(conv2d), E(linear), E(unfold), E(maxPool2d), E(avgPool2d), E(adaptiveAvgPool2d), E(batchNorm), E(layerNorm),
    E(relu), E(relu6), E(silu), E(sigmoid), E(tanh), E(hardtanh), E(leakyRelu), E(gelu), E(softmax), E(logSoftmax),
    E(crossEntropy), E(mseLoss), E(nllLoss), E(dropout), E(oneHot), E(pad), E(interpolateBilinear), E(interpolateNearest),
};
#undef E

void RegisterNNOps(Napi::Env env, Napi::Object exports) {
  RegisterOps(env, exports, kNNOps, sizeof(kNNOps) / sizeof(kNNOps[0]));
}

}  // namespace tapir
