#include "mpxdp/address.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <cstring>

namespace mpxdp {

std::optional<MacAddress> MacAddress::parse(std::string_view text) {
  MacAddress mac;
  if (text.size() != 17) {
    return std::nullopt;
  }
  for (std::size_t i = 0; i < 6; ++i) {
    unsigned value = 0;
    for (std::size_t j = 0; j < 2; ++j) {
      const char c = text[i * 3 + j];
      value <<= 4;
      if (c >= '0' && c <= '9') {
        value |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        value |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        value |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        return std::nullopt;
      }
    }
    if (i < 5 && text[i * 3 + 2] != ':') {
      return std::nullopt;
    }
    mac.bytes[i] = static_cast<std::uint8_t>(value);
  }
  return mac;
}

std::string MacAddress::toString() const {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2], bytes[3],
                     bytes[4], bytes[5]);
}

IpAddress IpAddress::v4(std::uint32_t hostOrder) {
  IpAddress ip;
  ip.family = Family::kV4;
  ip.bytes[0] = static_cast<std::uint8_t>(hostOrder >> 24);
  ip.bytes[1] = static_cast<std::uint8_t>(hostOrder >> 16);
  ip.bytes[2] = static_cast<std::uint8_t>(hostOrder >> 8);
  ip.bytes[3] = static_cast<std::uint8_t>(hostOrder);
  return ip;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) {
    return std::nullopt;
  }
  char buffer[INET6_ADDRSTRLEN] = {};
  std::memcpy(buffer, text.data(), text.size());
  IpAddress ip;
  if (inet_pton(AF_INET, buffer, ip.bytes.data()) == 1) {
    ip.family = Family::kV4;
    return ip;
  }
  if (inet_pton(AF_INET6, buffer, ip.bytes.data()) == 1) {
    ip.family = Family::kV6;
    return ip;
  }
  return std::nullopt;
}

std::uint32_t IpAddress::v4HostOrder() const noexcept {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) | (std::uint32_t{bytes[2]} << 8) |
         std::uint32_t{bytes[3]};
}

std::string IpAddress::toString() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(isV4() ? AF_INET : AF_INET6, bytes.data(), buffer, sizeof(buffer));
  return buffer;
}

}  // namespace mpxdp
