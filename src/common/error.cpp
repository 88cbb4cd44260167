#include "mpxdp/error.h"

#include <cstring>

namespace mpxdp {

std::string Error::message() const {
  if (code_ == 0) {
    return context_;
  }
  return context_ + ": " + std::strerror(code_);
}

}  // namespace mpxdp
