// Errors as values. A Status carries one of a small set of generic codes (each maps to one HTTP
// status in net/) and a message meant for a person; Result<T> is a value or a Status.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace lepton {

enum class StatusCode {
  kOk,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kConflict,
  kUnavailable,
  kResourceExhausted,
  kPermissionDenied,
  kInternal,
};

std::string_view status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  static Status invalid_argument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid_argument: message", for logs and CLI output.
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
  Result(Status status) : data_(std::move(status)) {    // NOLINT(google-explicit-constructor)
    if (std::get<Status>(data_).is_ok()) std::abort();  // An error Result needs an error Status.
  }

  bool is_ok() const { return std::holds_alternative<T>(data_); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(data_);
  }
  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> data_;
};

// Broken internal invariants are bugs, not input errors: report and abort.
[[noreturn]] void check_failed(const char* expr, const char* file, int line);
#define LEPTON_CHECK(expr) ((expr) ? (void)0 : ::lepton::check_failed(#expr, __FILE__, __LINE__))

// Returns the Status of `expr` from the enclosing function when it is an error.
#define LEPTON_RETURN_IF_ERROR(expr)                    \
  do {                                                  \
    ::lepton::Status lepton_status_ = (expr);           \
    if (!lepton_status_.is_ok()) return lepton_status_; \
  } while (0)

}  // namespace lepton
