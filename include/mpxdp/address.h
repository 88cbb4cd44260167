// Link-layer and IP addresses as plain values.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mpxdp/export.h"

namespace mpxdp {

struct MPXDP_API MacAddress {
  std::array<std::uint8_t, 6> bytes{};

  static std::optional<MacAddress> parse(std::string_view text);
  std::string toString() const;
  bool operator==(const MacAddress&) const = default;
};

// IPv4 or IPv6 address, bytes in network order. IPv4 uses the first 4 bytes.
struct MPXDP_API IpAddress {
  enum class Family : std::uint8_t { kV4 = 4, kV6 = 6 };
  Family family = Family::kV4;
  std::array<std::uint8_t, 16> bytes{};

  static IpAddress v4(std::uint32_t hostOrder);
  static std::optional<IpAddress> parse(std::string_view text);
  bool isV4() const noexcept { return family == Family::kV4; }
  // IPv4 address in host byte order; only meaningful when isV4().
  std::uint32_t v4HostOrder() const noexcept;
  std::string toString() const;
  bool operator==(const IpAddress&) const = default;
};

}  // namespace mpxdp
