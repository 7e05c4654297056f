// Errors raised by the native layer. Every error carries a stable machine code
// (e.g. "HeaderTooLarge") plus an optional tensor name; the bindings convert it
// into a JS Error with `code` and `tensor` properties, and the TypeScript layer
// wraps it into a typed error class naming the file.
#pragma once
#include <stdexcept>
#include <string>

namespace dfm {

class DfError : public std::runtime_error {
 public:
  DfError(std::string code, const std::string& message, std::string tensor = "")
      : std::runtime_error(message), code_(std::move(code)), tensor_(std::move(tensor)) {}
  const std::string& code() const { return code_; }
  const std::string& tensor() const { return tensor_; }

 private:
  std::string code_;
  std::string tensor_;
};

}  // namespace dfm
