// Errors as values: an errno plus the context in which it happened.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

#include "mpxdp/export.h"

namespace mpxdp {

class MPXDP_API Error {
 public:
  Error(int code, std::string context) : code_(code), context_(std::move(context)) {}

  // Captures the current errno.
  static Error fromErrno(std::string context) { return Error(errno, std::move(context)); }

  int code() const noexcept { return code_; }
  const std::string& context() const noexcept { return context_; }
  // "context: strerror(code)", or just the context when code is 0.
  std::string message() const;

  // Prepends an outer context: "outer: inner".
  Error wrap(const std::string& outer) const { return Error(code_, outer + ": " + context_); }

 private:
  int code_;
  std::string context_;
};

// Either a T or an Error. Kept tiny on purpose: the library never throws.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error)
      : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const Error& error() const { return std::get<1>(v_); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_{0, ""};
  bool ok_ = true;
};

}  // namespace mpxdp
