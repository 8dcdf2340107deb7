// tapir native binding: shared helpers for argument conversion and tensor handles.
// The addon holds ATen tensors behind N-API externals and exposes ops; it owns no policy.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <stdexcept>

#include <string>
#include <vector>

namespace tapir {

// One at::Tensor per JS handle. dispose() resets `t`; the finalizer deletes the holder.
struct Holder {
  at::Tensor t;
};

int64_t LiveCount();
Napi::Value Wrap(Napi::Env env, at::Tensor t);
Napi::Value WrapList(Napi::Env env, const std::vector<at::Tensor>& ts);
bool IsHandle(const Napi::Value& v);
Holder* HolderOf(const Napi::Value& v);  // nullptr when v is not a tapir handle
void Release(Holder* h);

// Argument readers. They throw ArgError (a JS TypeError) naming the argument position.
struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
const at::Tensor& T(const Napi::CallbackInfo& info, size_t i);
c10::optional<at::Tensor> OT(const Napi::CallbackInfo& info, size_t i);
std::vector<at::Tensor> TL(const Napi::CallbackInfo& info, size_t i);
bool IsNum(const Napi::CallbackInfo& info, size_t i);
bool IsNil(const Napi::CallbackInfo& info, size_t i);
int64_t I(const Napi::CallbackInfo& info, size_t i);
double D(const Napi::CallbackInfo& info, size_t i);
bool B(const Napi::CallbackInfo& info, size_t i);
std::string Str(const Napi::CallbackInfo& info, size_t i);
std::vector<int64_t> IL(const Napi::CallbackInfo& info, size_t i);
at::Scalar S(const Napi::CallbackInfo& info, size_t i);
c10::optional<double> OD(const Napi::CallbackInfo& info, size_t i);
at::ScalarType DT(const Napi::CallbackInfo& info, size_t i);  // dtype name
c10::optional<at::ScalarType> ODT(const Napi::CallbackInfo& info, size_t i);
at::Device DEV(const Napi::CallbackInfo& info, size_t i);  // device name, default cpu
at::TensorOptions Opts(const Napi::CallbackInfo& info, size_t dtypeArg, size_t deviceArg);

at::ScalarType ParseDType(const std::string& s);
std::string DTypeName(at::ScalarType t);

// Op registration: every op goes through one guard that turns C++ errors into JS errors
// carrying the op name and the shapes of its tensor arguments.
using OpFn = Napi::Value (*)(const Napi::CallbackInfo&);
struct OpDef {
  const char* name;
  OpFn fn;
};
void RegisterOps(Napi::Env env, Napi::Object exports, const OpDef* defs, size_t n);
std::string DescribeArgs(const Napi::CallbackInfo& info);

template <OpFn F>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  const char* name = static_cast<const char*>(info.Data());
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const ArgError& e) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + ": " + e.what() + DescribeArgs(info));
  } catch (const c10::Error& e) {
    throw Napi::Error::New(info.Env(), std::string(name) + ": " + e.what_without_backtrace() + DescribeArgs(info));
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string(name) + ": " + e.what() + DescribeArgs(info));
  }
}
#define TAPIR_OP(name) {#name, ::tapir::Guarded<name>}

void RegisterTensorOps(Napi::Env env, Napi::Object exports);
void RegisterNNOps(Napi::Env env, Napi::Object exports);

}  // namespace tapir
