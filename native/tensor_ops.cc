// Tensor ops: elementwise math, comparisons, reductions, shape and indexing, linear algebra,
// and the few in-place updates optimizers need. One function per op; no policy.
#include "binding.h"

namespace tapir {

#define RET(expr) return Wrap(info.Env(), (expr))
#define ENV info.Env()

// Binary ops take a tensor or a number as the second operand.
#define BINARY(name, fn)                                                   \
  static Napi::Value name(const Napi::CallbackInfo& info) {                \
    const at::Tensor& a = T(info, 0);                                      \
    if (IsNum(info, 1)) RET(at::fn(a, S(info, 1)));                        \
    RET(at::fn(a, T(info, 1)));                                            \
  }
BINARY(mul, mul)
BINARY(div, div)
BINARY(eq, eq)
BINARY(ne, ne)
BINARY(lt, lt)
BINARY(le, le)
BINARY(gt, gt)
BINARY(ge, ge)
BINARY(remainder, remainder)
#undef BINARY

static Napi::Value add(const Napi::CallbackInfo& info) {
  const at::Tensor& a = T(info, 0);
  at::Scalar alpha = IsNil(info, 2) ? at::Scalar(1) : S(info, 2);
  if (IsNum(info, 1)) RET(at::add(a, S(info, 1), alpha));
  RET(at::add(a, T(info, 1), alpha));
}
static Napi::Value sub(const Napi::CallbackInfo& info) {
  const at::Tensor& a = T(info, 0);
  at::Scalar alpha = IsNil(info, 2) ? at::Scalar(1) : S(info, 2);
  if (IsNum(info, 1)) RET(at::sub(a, S(info, 1), alpha));
  RET(at::sub(a, T(info, 1), alpha));
}
static Napi::Value pow(const Napi::CallbackInfo& info) {
  if (IsNum(info, 0)) RET(at::pow(S(info, 0), T(info, 1)));
  const at::Tensor& a = T(info, 0);
  if (IsNum(info, 1)) RET(at::pow(a, S(info, 1)));
  RET(at::pow(a, T(info, 1)));
}
// contiguous(a, channelsLast?): a dense copy in row-major (NCHW) order, or in channels-last (NHWC) order for 4-D.
static Napi::Value contiguous(const Napi::CallbackInfo& info) {
  const bool cl = !IsNil(info, 1) && B(info, 1);
  RET(T(info, 0).contiguous(cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
}
static Napi::Value isChannelsLast(const Napi::CallbackInfo& info) {
  const at::Tensor& a = T(info, 0);
  return Napi::Boolean::New(ENV, a.dim() == 4 && a.is_contiguous(at::MemoryFormat::ChannelsLast) && !a.is_contiguous());
}
static Napi::Value maximum(const Napi::CallbackInfo& info) { RET(at::maximum(T(info, 0), T(info, 1))); }
static Napi::Value minimum(const Napi::CallbackInfo& info) { RET(at::minimum(T(info, 0), T(info, 1))); }

#define UNARY(name, fn) \
  static Napi::Value name(const Napi::CallbackInfo& info) { RET(at::fn(T(info, 0))); }
UNARY(neg, neg)
UNARY(abs, abs)
UNARY(sqrt, sqrt)
UNARY(rsqrt, rsqrt)
UNARY(exp, exp)
UNARY(log, log)
UNARY(square, square)
UNARY(sign, sign)
UNARY(reciprocal, reciprocal)
UNARY(erf, erf)
UNARY(floor, floor)
UNARY(round, round)
UNARY(sin, sin)
UNARY(cos, cos)
UNARY(logicalNot, logical_not)
UNARY(isfinite, isfinite)
UNARY(isnan, isnan)

UNARY(clone, clone)
UNARY(detach, detach)
UNARY(t, t)
UNARY(nonzero, nonzero)
UNARY(trace, trace)
#undef UNARY

static Napi::Value logicalAnd(const Napi::CallbackInfo& info) { RET(at::logical_and(T(info, 0), T(info, 1))); }
static Napi::Value logicalOr(const Napi::CallbackInfo& info) { RET(at::logical_or(T(info, 0), T(info, 1))); }
static Napi::Value clamp(const Napi::CallbackInfo& info) {
  c10::optional<at::Scalar> lo, hi;
  if (!IsNil(info, 1)) lo = S(info, 1);
  if (!IsNil(info, 2)) hi = S(info, 2);
  RET(at::clamp(T(info, 0), lo, hi));
}
static Napi::Value where(const Napi::CallbackInfo& info) {
  const at::Tensor& c = T(info, 0);
  if (IsNum(info, 1) && IsNum(info, 2)) RET(at::where(c, S(info, 1), S(info, 2)));
  if (IsNum(info, 1)) RET(at::where(c, S(info, 1), T(info, 2)));
  if (IsNum(info, 2)) RET(at::where(c, T(info, 1), S(info, 2)));
  RET(at::where(c, T(info, 1), T(info, 2)));
}
static Napi::Value maskedFill(const Napi::CallbackInfo& info) {
  if (IsNum(info, 2)) RET(at::masked_fill(T(info, 0), T(info, 1), S(info, 2)));
  RET(at::masked_fill(T(info, 0), T(info, 1), T(info, 2)));
}

// ---- reductions: dims = null means all dims ----------------------------------------------------
static Napi::Value sum(const Napi::CallbackInfo& info) {
  auto dt = ODT(info, 3);
  if (IsNil(info, 1)) RET(at::sum(T(info, 0), dt));
  RET(at::sum(T(info, 0), IL(info, 1), !IsNil(info, 2) && B(info, 2), dt));
}
static Napi::Value mean(const Napi::CallbackInfo& info) {
  if (IsNil(info, 1)) RET(at::mean(T(info, 0)));
  RET(at::mean(T(info, 0), IL(info, 1), !IsNil(info, 2) && B(info, 2)));
}
static Napi::Value var(const Napi::CallbackInfo& info) {
  // correction: 1 = unbiased (torch default), 0 = population
  c10::optional<int64_t> corr = IsNil(info, 3) ? 1 : I(info, 3);
  c10::optional<at::IntArrayRef> dims;
  std::vector<int64_t> d;
  if (!IsNil(info, 1)) {
    d = IL(info, 1);
    dims = d;
  }
  RET(at::var(T(info, 0), dims, corr, !IsNil(info, 2) && B(info, 2)));
}
static Napi::Value norm(const Napi::CallbackInfo& info) {
  at::Scalar p = IsNil(info, 1) ? at::Scalar(2) : S(info, 1);
  RET(at::norm(T(info, 0), p));
}
static Napi::Value logsumexp(const Napi::CallbackInfo& info) { RET(at::logsumexp(T(info, 0), IL(info, 1), !IsNil(info, 2) && B(info, 2))); }
static Napi::Value cumsum(const Napi::CallbackInfo& info) { RET(at::cumsum(T(info, 0), I(info, 1))); }
static Napi::Value all(const Napi::CallbackInfo& info) { RET(at::all(T(info, 0))); }
static Napi::Value any(const Napi::CallbackInfo& info) { RET(at::any(T(info, 0))); }
static Napi::Value amax(const Napi::CallbackInfo& info) {
  RET(at::amax(T(info, 0), IsNil(info, 1) ? std::vector<int64_t>{} : IL(info, 1), !IsNil(info, 2) && B(info, 2)));
}
static Napi::Value amin(const Napi::CallbackInfo& info) {
  RET(at::amin(T(info, 0), IsNil(info, 1) ? std::vector<int64_t>{} : IL(info, 1), !IsNil(info, 2) && B(info, 2)));
}
// maxDim/minDim return [values, indices]
static Napi::Value maxDim(const Napi::CallbackInfo& info) {
  auto r = at::max(T(info, 0), I(info, 1), !IsNil(info, 2) && B(info, 2));
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r)});
}
static Napi::Value minDim(const Napi::CallbackInfo& info) {
  auto r = at::min(T(info, 0), I(info, 1), !IsNil(info, 2) && B(info, 2));
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r)});
}
static Napi::Value argmax(const Napi::CallbackInfo& info) {
  c10::optional<int64_t> dim;
  if (!IsNil(info, 1)) dim = I(info, 1);
  RET(at::argmax(T(info, 0), dim, !IsNil(info, 2) && B(info, 2)));
}
static Napi::Value topk(const Napi::CallbackInfo& info) {
  int64_t dim = IsNil(info, 2) ? -1 : I(info, 2);
  bool largest = IsNil(info, 3) || B(info, 3);
  auto r = at::topk(T(info, 0), I(info, 1), dim, largest, true);
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r)});
}
static Napi::Value kthvalue(const Napi::CallbackInfo& info) {
  int64_t dim = IsNil(info, 2) ? -1 : I(info, 2);
  auto r = at::kthvalue(T(info, 0), I(info, 1), dim, !IsNil(info, 3) && B(info, 3));
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r)});
}
static Napi::Value sort(const Napi::CallbackInfo& info) {
  int64_t dim = IsNil(info, 1) ? -1 : I(info, 1);
  bool desc = !IsNil(info, 2) && B(info, 2);
  bool stable = !IsNil(info, 3) && B(info, 3);
  auto r = at::sort(T(info, 0), stable, dim, desc);
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r)});
}

// ---- shape and indexing ------------------------------------------------------------------------
static Napi::Value reshape(const Napi::CallbackInfo& info) { RET(at::reshape(T(info, 0), IL(info, 1))); }
static Napi::Value view(const Napi::CallbackInfo& info) { RET(T(info, 0).view(IL(info, 1))); }
static Napi::Value permute(const Napi::CallbackInfo& info) { RET(at::permute(T(info, 0), IL(info, 1))); }
static Napi::Value transpose(const Napi::CallbackInfo& info) { RET(at::transpose(T(info, 0), I(info, 1), I(info, 2))); }
static Napi::Value flatten(const Napi::CallbackInfo& info) {
  RET(at::flatten(T(info, 0), IsNil(info, 1) ? 0 : I(info, 1), IsNil(info, 2) ? -1 : I(info, 2)));
}
static Napi::Value squeeze(const Napi::CallbackInfo& info) {
  if (IsNil(info, 1)) RET(at::squeeze(T(info, 0)));
  RET(at::squeeze(T(info, 0), I(info, 1)));
}
static Napi::Value unsqueeze(const Napi::CallbackInfo& info) { RET(at::unsqueeze(T(info, 0), I(info, 1))); }
static Napi::Value expand(const Napi::CallbackInfo& info) { RET(T(info, 0).expand(IL(info, 1))); }
static Napi::Value repeat(const Napi::CallbackInfo& info) { RET(T(info, 0).repeat(IL(info, 1))); }
static Napi::Value flip(const Napi::CallbackInfo& info) { RET(at::flip(T(info, 0), IL(info, 1))); }
static Napi::Value cat(const Napi::CallbackInfo& info) { RET(at::cat(TL(info, 0), IsNil(info, 1) ? 0 : I(info, 1))); }
static Napi::Value stack(const Napi::CallbackInfo& info) { RET(at::stack(TL(info, 0), IsNil(info, 1) ? 0 : I(info, 1))); }
static Napi::Value split(const Napi::CallbackInfo& info) {
  int64_t dim = IsNil(info, 2) ? 0 : I(info, 2);
  if (IsNum(info, 1)) return WrapList(ENV, at::split(T(info, 0), I(info, 1), dim));
  return WrapList(ENV, at::split_with_sizes(T(info, 0), IL(info, 1), dim));
}
static Napi::Value narrow(const Napi::CallbackInfo& info) { RET(at::narrow(T(info, 0), I(info, 1), I(info, 2), I(info, 3))); }
static Napi::Value slice(const Napi::CallbackInfo& info) {
  c10::optional<int64_t> start, end;
  if (!IsNil(info, 2)) start = I(info, 2);
  if (!IsNil(info, 3)) end = I(info, 3);
  RET(at::slice(T(info, 0), I(info, 1), start, end, IsNil(info, 4) ? 1 : I(info, 4)));
}
static Napi::Value selectIndex(const Napi::CallbackInfo& info) { RET(at::select(T(info, 0), I(info, 1), I(info, 2))); }
static Napi::Value indexSelect(const Napi::CallbackInfo& info) { RET(at::index_select(T(info, 0), I(info, 1), T(info, 2))); }
static Napi::Value gather(const Napi::CallbackInfo& info) { RET(at::gather(T(info, 0), I(info, 1), T(info, 2))); }
static Napi::Value scatter(const Napi::CallbackInfo& info) {
  if (IsNum(info, 3)) RET(at::scatter(T(info, 0), I(info, 1), T(info, 2), S(info, 3)));
  RET(at::scatter(T(info, 0), I(info, 1), T(info, 2), T(info, 3)));
}
static Napi::Value scatterAdd(const Napi::CallbackInfo& info) { RET(at::scatter_add(T(info, 0), I(info, 1), T(info, 2), T(info, 3))); }
static Napi::Value maskedSelect(const Napi::CallbackInfo& info) { RET(at::masked_select(T(info, 0), T(info, 1))); }
static Napi::Value diag(const Napi::CallbackInfo& info) { RET(at::diag(T(info, 0), IsNil(info, 1) ? 0 : I(info, 1))); }
static Napi::Value diagonal(const Napi::CallbackInfo& info) {
  RET(at::diagonal(T(info, 0), IsNil(info, 1) ? 0 : I(info, 1), IsNil(info, 2) ? 0 : I(info, 2), IsNil(info, 3) ? 1 : I(info, 3)));
}
static Napi::Value triu(const Napi::CallbackInfo& info) { RET(at::triu(T(info, 0), IsNil(info, 1) ? 0 : I(info, 1))); }
static Napi::Value tril(const Napi::CallbackInfo& info) { RET(at::tril(T(info, 0), IsNil(info, 1) ? 0 : I(info, 1))); }

// ---- linear algebra ----------------------------------------------------------------------------
static Napi::Value matmul(const Napi::CallbackInfo& info) { RET(at::matmul(T(info, 0), T(info, 1))); }
static Napi::Value mm(const Napi::CallbackInfo& info) { RET(at::mm(T(info, 0), T(info, 1))); }
static Napi::Value bmm(const Napi::CallbackInfo& info) { RET(at::bmm(T(info, 0), T(info, 1))); }
static Napi::Value dot(const Napi::CallbackInfo& info) { RET(at::dot(T(info, 0), T(info, 1))); }
static Napi::Value outer(const Napi::CallbackInfo& info) { RET(at::outer(T(info, 0), T(info, 1))); }
static Napi::Value addmm(const Napi::CallbackInfo& info) {
  at::Scalar beta = IsNil(info, 3) ? at::Scalar(1) : S(info, 3);
  at::Scalar alpha = IsNil(info, 4) ? at::Scalar(1) : S(info, 4);
  RET(at::addmm(T(info, 0), T(info, 1), T(info, 2), beta, alpha));
}
static Napi::Value cholesky(const Napi::CallbackInfo& info) { RET(at::linalg_cholesky(T(info, 0))); }
static Napi::Value choleskyInverse(const Napi::CallbackInfo& info) { RET(at::cholesky_inverse(T(info, 0))); }
static Napi::Value solve(const Napi::CallbackInfo& info) { RET(at::linalg_solve(T(info, 0), T(info, 1))); }
static Napi::Value inv(const Napi::CallbackInfo& info) { RET(at::linalg_inv(T(info, 0))); }
static Napi::Value eigh(const Napi::CallbackInfo& info) {
  auto r = at::linalg_eigh(T(info, 0));
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r)});
}
static Napi::Value qr(const Napi::CallbackInfo& info) {
  auto r = at::linalg_qr(T(info, 0));
  return WrapList(ENV, {std::get<0>(r), std::get<1>(r)});
}

// ---- in-place updates (optimizers, masks); callers run them with grad disabled -----------------
static Napi::Value addInplace(const Napi::CallbackInfo& info) {
  at::Tensor t = T(info, 0);
  at::Scalar alpha = IsNil(info, 2) ? at::Scalar(1) : S(info, 2);
  if (IsNum(info, 1)) t.add_(S(info, 1), alpha);
  else t.add_(T(info, 1), alpha);
  return info[0];
}
static Napi::Value mulInplace(const Napi::CallbackInfo& info) {
  at::Tensor t = T(info, 0);
  if (IsNum(info, 1)) t.mul_(S(info, 1));
  else t.mul_(T(info, 1));
  return info[0];
}
static Napi::Value addcmulInplace(const Napi::CallbackInfo& info) {
  T(info, 0).addcmul_(T(info, 1), T(info, 2), IsNil(info, 3) ? at::Scalar(1) : S(info, 3));
  return info[0];
}
static Napi::Value addcdivInplace(const Napi::CallbackInfo& info) {
  T(info, 0).addcdiv_(T(info, 1), T(info, 2), IsNil(info, 3) ? at::Scalar(1) : S(info, 3));
  return info[0];
}
static Napi::Value copyInplace(const Napi::CallbackInfo& info) {
  T(info, 0).copy_(T(info, 1));
  return info[0];
}
static Napi::Value fillInplace(const Napi::CallbackInfo& info) {
  T(info, 0).fill_(S(info, 1));
  return info[0];
}
static Napi::Value zeroInplace(const Napi::CallbackInfo& info) {
  T(info, 0).zero_();
  return info[0];
}

#define E(name) TAPIR_OP(name)
static const OpDef kTensorOps[] = {
    E(add), E(sub), E(mul), E(div), E(pow), E(remainder), E(maximum), E(minimum),
    E(eq), E(ne), E(lt), E(le), E(gt), E(ge), E(logicalAnd), E(logicalOr), E(logicalNot), E(isfinite), E(isnan),
    E(neg), E(abs), E(sqrt), E(rsqrt), E(exp), E(log), E(square), E(sign), E(reciprocal), E(erf), E(floor), E(round),
    E(sin), E(cos), E(clamp), E(where), E(maskedFill),
    E(sum), E(mean), E(var), E(norm), E(logsumexp), E(cumsum), E(all), E(any), E(amax), E(amin), E(maxDim), E(minDim),
    E(argmax), E(topk), E(kthvalue), E(sort), E(trace),
    E(contiguous), E(isChannelsLast), E(clone), E(detach), E(reshape), E(view), E(permute), E(transpose), E(t), E(flatten), E(squeeze),
    E(unsqueeze), E(expand), E(repeat), E(flip), E(cat), E(stack), E(split), E(narrow), E(slice), E(selectIndex),
    E(indexSelect), E(gather), E(scatter), E(scatterAdd), E(maskedSelect), E(nonzero), E(diag), E(diagonal), E(triu), E(tril),
    E(matmul), E(mm), E(bmm), E(dot), E(outer), E(addmm), E(cholesky), E(choleskyInverse), E(solve), E(inv), E(eigh), E(qr),
    E(addInplace), E(mulInplace), E(addcmulInplace), E(addcdivInplace), E(copyInplace), E(fillInplace), E(zeroInplace),
};
#undef E

void RegisterTensorOps(Napi::Env env, Napi::Object exports) {
  RegisterOps(env, exports, kTensorOps, sizeof(kTensorOps) / sizeof(kTensorOps[0]));
}

}  // namespace tapir
