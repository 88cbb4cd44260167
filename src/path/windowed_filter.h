// Windowed minimum / maximum in O(1) time and space: Kathleen Nichols'
// three-sample estimator, as BBR uses it (Linux lib/win_minmax.c). It keeps
// the best, second-best and third-best samples of successively later
// sub-windows, so when the best ages out of the window the next is at hand.
// "time" is any monotonic unit (ns, round counts).
#pragma once

#include <cstdint>

namespace mpxdp::path {

template <typename T, bool kMax>
class WindowedFilter {
 public:
  bool valid() const noexcept { return valid_; }
  T best() const noexcept { return valid_ ? s_[0].value : T{}; }

  void reset(std::uint64_t time, T value) noexcept {
    s_[0] = s_[1] = s_[2] = Sample{time, value};
    valid_ = true;
  }
  void clear() noexcept { valid_ = false; }

  T update(std::uint64_t window, std::uint64_t time, T value) noexcept {
    if (!valid_ || !worse(value, s_[0].value) || time - s_[2].time > window) {
      reset(time, value);
      return s_[0].value;
    }
    const Sample sample{time, value};
    if (!worse(value, s_[1].value)) {
      s_[2] = s_[1] = sample;
    } else if (!worse(value, s_[2].value)) {
      s_[2] = sample;
    }
    // Age the sub-windows (quarter, half, whole window).
    const std::uint64_t age = time - s_[0].time;
    if (age > window) {
      s_[0] = s_[1];
      s_[1] = s_[2];
      s_[2] = sample;
      if (time - s_[0].time > window) {
        s_[0] = s_[1];
        s_[1] = s_[2];
        s_[2] = sample;
      }
    } else if (s_[1].time == s_[0].time && age > window / 4) {
      s_[2] = s_[1] = sample;
    } else if (s_[2].time == s_[1].time && age > window / 2) {
      s_[2] = sample;
    }
    return s_[0].value;
  }

 private:
  struct Sample {
    std::uint64_t time = 0;
    T value{};
  };
  static bool worse(T a, T b) noexcept { return kMax ? a < b : a > b; }

  Sample s_[3]{};
  bool valid_ = false;
};

template <typename T>
using WindowedMin = WindowedFilter<T, false>;
template <typename T>
using WindowedMax = WindowedFilter<T, true>;

}  // namespace mpxdp::path
