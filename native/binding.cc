// Handles, argument conversion, error translation, and the core ops: creation, data transfer,
// metadata, autograd, threads and seeding.
#include "binding.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <c10/core/GradMode.h>

#include <dlfcn.h>
#include <malloc.h>

#include <cstring>
#include <sstream>

namespace tapir {

static int64_t g_live = 0;
// Distinguishes tapir handles from any other external passed in by mistake.
static const napi_type_tag kHandleTag = {0x7a9e1c3b5d4f2a10ULL, 0x93b8c6d2e1f04a57ULL};

int64_t LiveCount() { return g_live; }

void Release(Holder* h) {
  if (h->t.defined()) {
    h->t = at::Tensor();
    g_live--;
  }
}

Napi::Value Wrap(Napi::Env env, at::Tensor t) {
  auto* h = new Holder{std::move(t)};
  g_live++;
  auto ext = Napi::External<Holder>::New(env, h, [](Napi::Env, Holder* p) {
    Release(p);
    delete p;
  });
  ext.TypeTag(&kHandleTag);
  return ext;
}

Napi::Value WrapList(Napi::Env env, const std::vector<at::Tensor>& ts) {
  auto arr = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) arr.Set(i, ts[i].defined() ? Wrap(env, ts[i]) : env.Null());
  return arr;
}

bool IsHandle(const Napi::Value& v) {
  return v.IsExternal() && v.As<Napi::External<Holder>>().CheckTypeTag(&kHandleTag);
}

Holder* HolderOf(const Napi::Value& v) {
  return IsHandle(v) ? v.As<Napi::External<Holder>>().Data() : nullptr;
}

static std::string ArgName(size_t i) { return "argument " + std::to_string(i); }

const at::Tensor& T(const Napi::CallbackInfo& info, size_t i) {
  Holder* h = i < info.Length() ? HolderOf(info[i]) : nullptr;
  if (!h) throw ArgError(ArgName(i) + " must be a tensor");
  if (!h->t.defined()) throw ArgError(ArgName(i) + " is a disposed tensor (it was freed by dispose() or by its scope; keep() it or clone() it first)");
  return h->t;
}

bool IsNil(const Napi::CallbackInfo& info, size_t i) {
  return i >= info.Length() || info[i].IsNull() || info[i].IsUndefined();
}

c10::optional<at::Tensor> OT(const Napi::CallbackInfo& info, size_t i) {
  if (IsNil(info, i)) return c10::nullopt;
  return T(info, i);
}

std::vector<at::Tensor> TL(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsArray()) throw ArgError(ArgName(i) + " must be an array of tensors");
  auto arr = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Holder* h = HolderOf(arr.Get(k));
    if (!h) throw ArgError(ArgName(i) + "[" + std::to_string(k) + "] must be a tensor");
    if (!h->t.defined()) throw ArgError(ArgName(i) + "[" + std::to_string(k) + "] is a disposed tensor");
    out.push_back(h->t);
  }
  return out;
}

bool IsNum(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && (info[i].IsNumber() || info[i].IsBoolean());
}

double D(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsNumber()) throw ArgError(ArgName(i) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

c10::optional<double> OD(const Napi::CallbackInfo& info, size_t i) {
  if (IsNil(info, i)) return c10::nullopt;
  return D(info, i);
}

int64_t I(const Napi::CallbackInfo& info, size_t i) {
  double v = D(info, i);
  if (v != static_cast<double>(static_cast<int64_t>(v))) throw ArgError(ArgName(i) + " must be an integer, got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

bool B(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsBoolean()) throw ArgError(ArgName(i) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::string Str(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsString()) throw ArgError(ArgName(i) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

std::vector<int64_t> IL(const Napi::CallbackInfo& info, size_t i) {
  if (IsNum(info, i)) return {I(info, i)};
  if (i >= info.Length() || !info[i].IsArray()) throw ArgError(ArgName(i) + " must be an integer or an array of integers");
  auto arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value v = arr.Get(k);
    if (!v.IsNumber()) throw ArgError(ArgName(i) + "[" + std::to_string(k) + "] must be an integer");
    double d = v.As<Napi::Number>().DoubleValue();
    if (d != static_cast<double>(static_cast<int64_t>(d))) throw ArgError(ArgName(i) + "[" + std::to_string(k) + "] must be an integer");
    out[k] = static_cast<int64_t>(d);
  }
  return out;
}

at::Scalar S(const Napi::CallbackInfo& info, size_t i) {
  if (i < info.Length() && info[i].IsBoolean()) return at::Scalar(info[i].As<Napi::Boolean>().Value());
  double v = D(info, i);
  // Integral values stay integral so integer tensors are not promoted to float.
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9007199254740992.0) return at::Scalar(static_cast<int64_t>(v));
  return at::Scalar(v);
}

at::ScalarType ParseDType(const std::string& s) {
  if (s == "float32") return at::kFloat;
  if (s == "float64") return at::kDouble;
  if (s == "int64") return at::kLong;
  if (s == "int32") return at::kInt;
  if (s == "uint8") return at::kByte;
  if (s == "bool") return at::kBool;
  if (s == "float16") return at::kHalf;
  if (s == "bfloat16") return at::kBFloat16;
  throw ArgError("unknown dtype '" + s + "' (expected float32, float64, float16, bfloat16, int64, int32, uint8 or bool)");
}

std::string DTypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    default: return c10::toString(t);
  }
}

at::ScalarType DT(const Napi::CallbackInfo& info, size_t i) { return ParseDType(Str(info, i)); }

c10::optional<at::ScalarType> ODT(const Napi::CallbackInfo& info, size_t i) {
  if (IsNil(info, i)) return c10::nullopt;
  return DT(info, i);
}

at::Device DEV(const Napi::CallbackInfo& info, size_t i) {
  if (IsNil(info, i)) return at::Device(at::kCPU);
  std::string s = Str(info, i);
  at::Device dev(at::kCPU);
  try {
    dev = at::Device(s);
  } catch (const c10::Error&) {
    throw ArgError("unknown device '" + s + "' (expected 'cpu', 'cuda' or 'cuda:N')");
  }
  static const bool cuda = torch::cuda::is_available();
  if (dev.is_cuda() && !cuda)
    throw ArgError("device '" + s + "' requested, but this libtorch has no usable CUDA (Debian's libtorch-dev is CPU-only); "
                   "use 'cpu', or rebuild the addon against a CUDA PyTorch: LIBTORCH=<site-packages>/torch npm run build:native");
  return dev;
}

at::TensorOptions Opts(const Napi::CallbackInfo& info, size_t dtypeArg, size_t deviceArg) {
  auto o = at::TensorOptions().device(DEV(info, deviceArg));
  return IsNil(info, dtypeArg) ? o.dtype(at::kFloat) : o.dtype(DT(info, dtypeArg));
}

// ---- error translation ------------------------------------------------------------------

static std::string ShapeOf(const at::Tensor& t) {
  std::ostringstream s;
  s << "[";
  for (int64_t d = 0; d < t.dim(); d++) s << (d ? "," : "") << t.size(d);
  s << "] " << DTypeName(t.scalar_type());
  return s.str();
}

std::string DescribeArgs(const Napi::CallbackInfo& info) {
  std::ostringstream s;
  bool any = false;
  for (size_t i = 0; i < info.Length(); i++) {
    auto describe = [&](const Napi::Value& v) -> std::string {
      Holder* h = HolderOf(v);
      if (!h) return "";
      return h->t.defined() ? ShapeOf(h->t) : "<disposed>";
    };
    std::string d;
    if (info[i].IsArray()) {
      auto arr = info[i].As<Napi::Array>();
      std::string inner;
      for (uint32_t k = 0; k < arr.Length() && k < 8; k++) {
        std::string e = describe(arr.Get(k));
        if (!e.empty()) inner += (inner.empty() ? "" : ", ") + e;
      }
      if (!inner.empty()) d = "(" + inner + (arr.Length() > 8 ? ", ..." : "") + ")";
    } else {
      d = describe(info[i]);
    }
    if (d.empty()) continue;
    s << (any ? "; " : "") << "arg" << i << " " << d;
    any = true;
  }
  return any ? " [inputs: " + s.str() + "]" : "";
}

// Guarded<F> needs F at compile time, so each registration table instantiates it per entry.
void RegisterOps(Napi::Env env, Napi::Object exports, const OpDef* defs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (exports.Has(defs[i].name)) throw Napi::Error::New(env, std::string("tapir native: op registered twice: ") + defs[i].name);
    exports.Set(defs[i].name, Napi::Function::New(env, defs[i].fn, defs[i].name, const_cast<char*>(defs[i].name)));
  }
}

// ---- core ops -------------------------------------------------------------------------------

static Napi::Value fromArray(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray()) throw ArgError("argument 0 must be a TypedArray");
  auto ta = info[0].As<Napi::TypedArray>();
  auto shape = IL(info, 1);
  at::ScalarType dt = DT(info, 2);
  at::ScalarType src;
  switch (ta.TypedArrayType()) {
    case napi_float32_array: src = at::kFloat; break;
    case napi_float64_array: src = at::kDouble; break;
    case napi_bigint64_array: src = at::kLong; break;
    case napi_int32_array: src = at::kInt; break;
    case napi_uint8_array: src = dt == at::kBool ? at::kBool : at::kByte; break;
    default: throw ArgError("argument 0: unsupported TypedArray kind (use Float32Array, Float64Array, BigInt64Array, Int32Array or Uint8Array)");
  }
  if (src != dt) throw ArgError("TypedArray holds " + DTypeName(src) + " but dtype " + DTypeName(dt) + " was requested");
  int64_t numel = 1;
  for (auto d : shape) {
    if (d < 0) throw ArgError("negative dimension in shape");
    numel *= d;
  }
  if (static_cast<int64_t>(ta.ElementLength()) != numel)
    throw ArgError("shape holds " + std::to_string(numel) + " elements but the array has " + std::to_string(ta.ElementLength()));
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dt));
  auto* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  if (numel) std::memcpy(t.data_ptr(), base, ta.ByteLength());
  at::Device dev = DEV(info, 3);
  if (!dev.is_cpu()) t = t.to(dev);
  return Wrap(info.Env(), t);
}

static Napi::Value toArray(const Napi::CallbackInfo& info) {
  at::Tensor t = T(info, 0).detach().to(at::kCPU).contiguous();
  Napi::Env env = info.Env();
  size_t n = t.numel();
  size_t bytes = t.nbytes();
  auto buf = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) std::memcpy(buf.Data(), t.data_ptr(), bytes);
  switch (t.scalar_type()) {
    case at::kFloat: return Napi::Float32Array::New(env, n, buf, 0);
    case at::kDouble: return Napi::Float64Array::New(env, n, buf, 0);
    case at::kLong: return Napi::BigInt64Array::New(env, n, buf, 0);
    case at::kInt: return Napi::Int32Array::New(env, n, buf, 0);
    case at::kByte:
    case at::kBool: return Napi::Uint8Array::New(env, n, buf, 0);
    default: throw ArgError("toArray: dtype " + DTypeName(t.scalar_type()) + " has no TypedArray; convert with to('float32') first");
  }
}

static Napi::Value item(const Napi::CallbackInfo& info) {
  const at::Tensor& t = T(info, 0);
  if (t.numel() != 1) throw ArgError("item() needs a tensor with one element, got " + std::to_string(t.numel()));
  return Napi::Number::New(info.Env(), t.item<double>());
}

static Napi::Value dispose(const Napi::CallbackInfo& info) {
  Holder* h = HolderOf(info[0]);
  if (!h) throw ArgError("argument 0 must be a tensor");
  Release(h);
  return info.Env().Undefined();
}

static Napi::Value isDisposed(const Napi::CallbackInfo& info) {
  Holder* h = HolderOf(info[0]);
  if (!h) throw ArgError("argument 0 must be a tensor");
  return Napi::Boolean::New(info.Env(), !h->t.defined());
}

static Napi::Value liveCount(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(LiveCount())); }

static Napi::Value shape(const Napi::CallbackInfo& info) {
  const at::Tensor& t = T(info, 0);
  auto arr = Napi::Array::New(info.Env(), t.dim());
  for (int64_t d = 0; d < t.dim(); d++) arr.Set(d, Napi::Number::New(info.Env(), static_cast<double>(t.size(d))));
  return arr;
}

static Napi::Value dtype(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), DTypeName(T(info, 0).scalar_type())); }
static Napi::Value device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), T(info, 0).device().str()); }
static Napi::Value requiresGrad(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), T(info, 0).requires_grad()); }
static Napi::Value isLeaf(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), T(info, 0).is_leaf()); }
static Napi::Value setRequiresGrad(const Napi::CallbackInfo& info) {
  T(info, 0).set_requires_grad(B(info, 1));
  return info.Env().Undefined();
}
static Napi::Value gradOf(const Napi::CallbackInfo& info) {
  const at::Tensor& g = T(info, 0).grad();
  return g.defined() ? Wrap(info.Env(), g) : info.Env().Null();
}
static Napi::Value clearGrad(const Napi::CallbackInfo& info) {
  T(info, 0).mutable_grad().reset();
  return info.Env().Undefined();
}
static Napi::Value sameData(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), T(info, 0).is_same(T(info, 1)));
}

// creation
static Napi::Value zeros(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::zeros(IL(info, 0), Opts(info, 1, 2))); }
static Napi::Value ones(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::ones(IL(info, 0), Opts(info, 1, 2))); }
static Napi::Value full(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::full(IL(info, 0), S(info, 1), Opts(info, 2, 3))); }
static Napi::Value randn(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::randn(IL(info, 0), Opts(info, 1, 2))); }
static Napi::Value rand(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::rand(IL(info, 0), Opts(info, 1, 2))); }
static Napi::Value randint(const Napi::CallbackInfo& info) {
  auto o = at::TensorOptions().dtype(at::kLong).device(DEV(info, 3));
  return Wrap(info.Env(), at::randint(I(info, 0), I(info, 1), IL(info, 2), o));
}
static Napi::Value randperm(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::randperm(I(info, 0), at::TensorOptions().dtype(at::kLong).device(DEV(info, 1))));
}
static Napi::Value bernoulli(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::bernoulli(T(info, 0))); }
static Napi::Value arange(const Napi::CallbackInfo& info) {
  auto o = IsNil(info, 3) ? at::TensorOptions().dtype(at::kLong).device(DEV(info, 4)) : Opts(info, 3, 4);
  return Wrap(info.Env(), at::arange(S(info, 0), S(info, 1), S(info, 2), o));
}
static Napi::Value eye(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::eye(I(info, 0), Opts(info, 1, 2))); }

static Napi::Value to(const Napi::CallbackInfo& info) {
  const at::Tensor& t = T(info, 0);
  auto dt = ODT(info, 1);
  at::Device dev = IsNil(info, 2) ? t.device() : DEV(info, 2);
  return Wrap(info.Env(), t.to(dev, dt ? *dt : t.scalar_type()));
}

// autograd
static Napi::Value backward(const Napi::CallbackInfo& info) {
  const at::Tensor& t = T(info, 0);
  auto g = OT(info, 1);
  bool create = !IsNil(info, 3) && B(info, 3);
  c10::optional<bool> retain;
  if (!IsNil(info, 2)) retain = B(info, 2);
  torch::autograd::backward({t}, g ? std::vector<at::Tensor>{*g} : std::vector<at::Tensor>{}, retain, create);
  return info.Env().Undefined();
}

static Napi::Value grad(const Napi::CallbackInfo& info) {
  auto outputs = TL(info, 0);
  auto inputs = TL(info, 1);
  std::vector<at::Tensor> gradOutputs;
  if (!IsNil(info, 2)) gradOutputs = TL(info, 2);
  bool create = !IsNil(info, 4) && B(info, 4);
  c10::optional<bool> retain;
  if (!IsNil(info, 3)) retain = B(info, 3);
  bool allowUnused = !IsNil(info, 5) && B(info, 5);
  auto gs = torch::autograd::grad(outputs, inputs, gradOutputs, retain, create, allowUnused);
  return WrapList(info.Env(), gs);
}

static Napi::Value setGradEnabled(const Napi::CallbackInfo& info) {
  bool prev = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(B(info, 0));
  return Napi::Boolean::New(info.Env(), prev);
}
static Napi::Value isGradEnabled(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled()); }

static Napi::Value setNumThreads(const Napi::CallbackInfo& info) {
  int64_t n = I(info, 0);
  if (n < 1) throw ArgError("thread count must be >= 1");
  at::set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}
static Napi::Value getNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), at::get_num_threads()); }
// Returns the allocator's cached free memory to the OS, so that the OS's available-memory figure counts it:
// tcmalloc's MallocExtension_ReleaseFreeMemory when tcmalloc is loaded (bin/tapir preloads it), glibc's malloc_trim
// otherwise. Returns which allocator was asked.
static Napi::Value releaseFreeMemory(const Napi::CallbackInfo& info) {
  using Release = void (*)();
  static const Release tcmalloc = reinterpret_cast<Release>(dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory"));
  if (tcmalloc) tcmalloc();
  else malloc_trim(0);
  return Napi::String::New(info.Env(), tcmalloc ? "tcmalloc" : "glibc");
}
static Napi::Value manualSeed(const Napi::CallbackInfo& info) {
  at::manual_seed(static_cast<uint64_t>(I(info, 0)));
  return info.Env().Undefined();
}
static Napi::Value cudaAvailable(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), torch::cuda::is_available()); }
static Napi::Value cudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::device_count()));
}
static Napi::Value cudaSynchronize(const Napi::CallbackInfo& info) {
  if (torch::cuda::is_available()) torch::cuda::synchronize();
  return info.Env().Undefined();
}
static Napi::Value buildInfo(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("torchVersion", TORCH_VERSION);
  o.Set("config", at::show_config());
  o.Set("parallel", at::get_parallel_info());
  return o;
}

#define E(name) TAPIR_OP(name)
static const OpDef kCoreOps[] = {
    E(fromArray), E(toArray), E(item), E(dispose), E(isDisposed), E(liveCount), E(shape), E(dtype), E(device),
    E(requiresGrad), E(isLeaf), E(setRequiresGrad), E(gradOf), E(clearGrad), E(sameData),
    E(zeros), E(ones), E(full), E(randn), E(rand), E(randint), E(randperm), E(bernoulli), E(arange), E(eye), E(to),
    E(backward), E(grad), E(setGradEnabled), E(isGradEnabled),
    E(setNumThreads), E(getNumThreads), E(releaseFreeMemory), E(manualSeed), E(cudaAvailable), E(cudaDeviceCount), E(cudaSynchronize), E(buildInfo),
};
#undef E

}  // namespace tapir

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tapir::RegisterOps(env, exports, tapir::kCoreOps, sizeof(tapir::kCoreOps) / sizeof(tapir::kCoreOps[0]));
  tapir::RegisterTensorOps(env, exports);
  tapir::RegisterNNOps(env, exports);
  return exports;
}

NODE_API_MODULE(tapir, Init)
