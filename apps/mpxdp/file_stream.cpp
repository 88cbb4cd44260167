#include "file_stream.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>

namespace mpxdp::cli {
namespace {

// Big-endian, as the wire format.
void put16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void put32(std::uint8_t* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}
void put64(std::uint8_t* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (56 - 8 * i));
}
std::uint16_t get16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>((static_cast<unsigned>(p[0]) << 8) | p[1]);
}
std::uint32_t get32(const std::uint8_t* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | p[i];
  return v;
}
std::uint64_t get64(const std::uint8_t* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

void putDigestName(std::uint8_t* p) noexcept {
  std::memset(p, 0, 8);
  std::memcpy(p, kFileDigestName.data(), kFileDigestName.size());
}

// The 8-byte NUL-padded algorithm name, printable for the error message.
std::string digestNameAt(const std::uint8_t* p) {
  std::string name;
  for (int i = 0; i < 8 && p[i] != 0; ++i)
    name += (p[i] >= 0x20 && p[i] < 0x7f) ? static_cast<char>(p[i]) : '?';
  return name;
}

bool digestNameMatches(const std::uint8_t* p) noexcept {
  std::uint8_t expected[8];
  putDigestName(expected);
  return std::memcmp(p, expected, 8) == 0;
}

Error bad(const std::string& what) { return Error(EBADMSG, "file stream: " + what); }

}  // namespace

std::size_t encodeFileHeader(const FileHeader& header, std::span<std::uint8_t> out) noexcept {
  if (out.size() < kFileHeaderFixedBytes) return 0;
  std::size_t nameBytes =
      std::min({header.name.size(), kMaxFileNameBytes, out.size() - kFileHeaderFixedBytes});
  // Do not cut a UTF-8 sequence in half: back up over continuation bytes.
  if (nameBytes < header.name.size()) {
    while (nameBytes > 0 && (static_cast<std::uint8_t>(header.name[nameBytes]) & 0xC0) == 0x80) --nameBytes;
  }
  std::uint8_t* p = out.data();
  std::memcpy(p, kFileHeaderMagic.data(), 8);
  put16(p + 8, header.version);
  put16(p + 10, 0);  // flags
  putDigestName(p + 12);
  put64(p + 20, header.size);
  put32(p + 28, header.chunkBytes);
  put16(p + 32, static_cast<std::uint16_t>(nameBytes));
  std::copy_n(header.name.begin(), nameBytes, p + kFileHeaderFixedBytes);  // not NUL-terminated on the wire
  return kFileHeaderFixedBytes + nameBytes;
}

Result<FileHeader> decodeFileHeader(std::span<const std::uint8_t> payload) {
  if (payload.size() < 8 || std::memcmp(payload.data(), kFileHeaderMagic.data(), 8) != 0)
    return bad("the first payload is not a file header (bad magic): is the sender running with -F?");
  if (payload.size() < kFileHeaderFixedBytes)
    return bad(
        fmt::format("header of {} bytes, at least {} expected", payload.size(), kFileHeaderFixedBytes));
  const std::uint8_t* p = payload.data();
  FileHeader header;
  header.version = get16(p + 8);
  if (header.version != kFileStreamVersion)
    return bad(fmt::format("version {} (this side reads version {})", header.version, kFileStreamVersion));
  if (!digestNameMatches(p + 12))
    return bad(
        fmt::format("unknown digest '{}' (this side knows {})", digestNameAt(p + 12), kFileDigestName));
  header.size = get64(p + 20);
  header.chunkBytes = get32(p + 28);
  if (header.chunkBytes == 0) return bad("header says data payloads of 0 bytes");
  const std::size_t nameBytes = get16(p + 32);
  if (nameBytes > kMaxFileNameBytes || kFileHeaderFixedBytes + nameBytes != payload.size()) {
    return bad(fmt::format("header of {} bytes with a name of {} bytes (sizes disagree)", payload.size(),
                           nameBytes));
  }
  header.name.assign(reinterpret_cast<const char*>(p + kFileHeaderFixedBytes), nameBytes);
  if (header.name.find('/') != std::string::npos || header.name.find('\0') != std::string::npos)
    return bad("the file name in the header holds '/' or NUL");
  return header;
}

std::size_t encodeFileTrailer(const FileTrailer& trailer, std::span<std::uint8_t> out) noexcept {
  if (out.size() < kFileTrailerBytes) return 0;
  std::uint8_t* p = out.data();
  std::memcpy(p, kFileTrailerMagic.data(), 8);
  putDigestName(p + 8);
  put64(p + 16, trailer.size);
  put16(p + 24, static_cast<std::uint16_t>(kFileDigestBytes));
  std::memcpy(p + 26, trailer.digest.data(), kFileDigestBytes);
  return kFileTrailerBytes;
}

Result<FileTrailer> decodeFileTrailer(std::span<const std::uint8_t> payload) {
  if (payload.size() < 8 || std::memcmp(payload.data(), kFileTrailerMagic.data(), 8) != 0)
    return bad("the payload after the file's last byte is not a trailer (bad magic)");
  if (payload.size() != kFileTrailerBytes)
    return bad(fmt::format("trailer of {} bytes, {} expected", payload.size(), kFileTrailerBytes));
  const std::uint8_t* p = payload.data();
  if (!digestNameMatches(p + 8))
    return bad(fmt::format("unknown digest '{}' in the trailer", digestNameAt(p + 8)));
  if (get16(p + 24) != kFileDigestBytes)
    return bad(fmt::format("trailer digest of {} bytes, {} expected", get16(p + 24), kFileDigestBytes));
  FileTrailer trailer;
  trailer.size = get64(p + 16);
  std::memcpy(trailer.digest.data(), p + 26, kFileDigestBytes);
  return trailer;
}

std::uint64_t fileDataPayloads(std::uint64_t size, std::uint32_t chunkBytes) noexcept {
  return chunkBytes == 0 ? 0 : size / chunkBytes + (size % chunkBytes != 0 ? 1 : 0);
}

std::uint64_t fileStreamBytes(const FileHeader& header) noexcept {
  std::array<std::uint8_t, kFileHeaderFixedBytes + kMaxFileNameBytes> buffer{};
  const std::size_t headerBytes = encodeFileHeader(
      header, std::span<std::uint8_t>(buffer).first(std::min<std::size_t>(buffer.size(), header.chunkBytes)));
  return headerBytes + header.size + kFileTrailerBytes;
}

std::string fileBaseName(std::string_view path) {
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  const std::size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string toHex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * bytes.size());
  for (std::uint8_t b : bytes) {
    hex += kDigits[b >> 4];
    hex += kDigits[b & 0xF];
  }
  return hex;
}

std::string printableName(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (std::size_t i = 0; i < name.size();) {
    const auto c = static_cast<std::uint8_t>(name[i]);
    if (c < 0x80) {
      out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
      ++i;
      continue;
    }
    // Lead byte: 2, 3 or 4 bytes; no overlong forms, surrogates or code points above U+10FFFF.
    const std::size_t length = c >= 0xC2 && c <= 0xDF   ? 2
                               : c >= 0xE0 && c <= 0xEF ? 3
                               : c >= 0xF0 && c <= 0xF4 ? 4
                                                        : 0;
    bool valid = length != 0 && i + length <= name.size();
    for (std::size_t k = 1; valid && k < length; ++k)
      valid = (static_cast<std::uint8_t>(name[i + k]) & 0xC0) == 0x80;
    if (valid && length >= 3) {
      const auto second = static_cast<std::uint8_t>(name[i + 1]);
      if (c == 0xE0) valid = second >= 0xA0;
      if (c == 0xED) valid = second < 0xA0;
      if (c == 0xF0) valid = second >= 0x90;
      if (c == 0xF4) valid = second < 0x90;
    }
    if (!valid) {
      out += '?';
      ++i;
      continue;
    }
    out.append(name.substr(i, length));
    i += length;
  }
  return out;
}

Error FileStreamParser::fail(const std::string& what) {
  state_ = State::kFailed;
  return bad(what);
}

Result<FilePart> FileStreamParser::feed(std::uint64_t seq, std::span<const std::uint8_t> payload) {
  if (state_ == State::kFailed) return bad("the stream already failed");
  if (seq != nextSeq_) {
    if (seq > nextSeq_) {
      return fail(
          fmt::format("payloads {}..{} are missing (lost: the stream must be reliable)", nextSeq_, seq - 1));
    }
    return fail(fmt::format("payload {} arrived again after {}", seq, nextSeq_ - 1));
  }
  ++nextSeq_;
  switch (state_) {
    case State::kHeader: {
      auto header = decodeFileHeader(payload);
      if (!header) {
        state_ = State::kFailed;
        return header.error();
      }
      header_ = std::move(*header);
      state_ = header_.size == 0 ? State::kTrailer : State::kData;
      return FilePart::kHeader;
    }
    case State::kData: {
      const std::uint64_t left = header_.size - dataBytes_;
      const std::uint64_t expected = std::min<std::uint64_t>(left, header_.chunkBytes);
      if (payload.size() != expected) {
        if (payload.size() >= 8 && std::memcmp(payload.data(), kFileTrailerMagic.data(), 8) == 0) {
          return fail(
              fmt::format("the trailer came after {} of {} bytes (short stream)", dataBytes_, header_.size));
        }
        return fail(fmt::format("data payload of {} bytes at offset {}, {} expected (sizes disagree)",
                                payload.size(), dataBytes_, expected));
      }
      dataBytes_ += payload.size();
      if (dataBytes_ == header_.size) state_ = State::kTrailer;
      return FilePart::kData;
    }
    case State::kTrailer: {
      auto trailer = decodeFileTrailer(payload);
      if (!trailer) {
        state_ = State::kFailed;
        return trailer.error();
      }
      if (trailer->size != header_.size) {
        return fail(fmt::format("the trailer says {} bytes, the header {} (sizes disagree)", trailer->size,
                                header_.size));
      }
      trailer_ = *trailer;
      state_ = State::kDone;
      return FilePart::kTrailer;
    }
    case State::kDone:
      return fail(fmt::format("{} more bytes after the trailer (long stream)", payload.size()));
    case State::kFailed:
      break;
  }
  return bad("the stream already failed");
}

Result<void> FileStreamParser::finish() const {
  switch (state_) {
    case State::kDone:
      return {};
    case State::kHeader:
      return bad("the stream ended before the header (nothing arrived)");
    case State::kData:
    case State::kTrailer:
      return bad(fmt::format("the stream ended after {} of {} bytes{} (short stream)", dataBytes_,
                             header_.size, state_ == State::kTrailer ? ", without the trailer" : ""));
    case State::kFailed:
      break;
  }
  return bad("the stream failed");
}

}  // namespace mpxdp::cli
