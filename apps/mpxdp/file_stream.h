// The file stream of `mpxdp send -F` / `mpxdp recv -F`, carried in the
// connection's in-order data stream (docs/file-transfer.md): a header payload
// (magic, version, digest algorithm, file size, data payload size, base
// name), the file's bytes in payloads of that size (the last one shorter),
// and a trailer payload (magic, digest algorithm, file size again, digest).
// Pure functions and a parser that checks every payload; hashing and disk I/O
// live in file_io.h.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "mpxdp/error.h"

namespace mpxdp::cli {

inline constexpr std::array<std::uint8_t, 8> kFileHeaderMagic = {'M', 'P', 'X', 'F', 'I', 'L', 'E', 'H'};
inline constexpr std::array<std::uint8_t, 8> kFileTrailerMagic = {'M', 'P', 'X', 'F', 'I', 'L', 'E', 'T'};
inline constexpr std::uint16_t kFileStreamVersion = 1;
// The only digest so far; its name travels in both frames, NUL-padded to 8 bytes.
inline constexpr std::string_view kFileDigestName = "sha256";
inline constexpr std::size_t kFileDigestBytes = 32;
inline constexpr std::size_t kFileHeaderFixedBytes = 34;  // + name
inline constexpr std::size_t kFileTrailerBytes = 26 + kFileDigestBytes;
inline constexpr std::size_t kMaxFileNameBytes = 255;
// The smallest payload a file stream can use: header (with a short name) and trailer fit.
inline constexpr std::uint32_t kMinFilePayload = 64;

using FileDigest = std::array<std::uint8_t, kFileDigestBytes>;

struct FileHeader {
  std::uint16_t version = kFileStreamVersion;
  std::uint64_t size = 0;        // file bytes
  std::uint32_t chunkBytes = 0;  // every data payload carries this many bytes, the last one 1..chunkBytes
  std::string name;              // the sender's base name: information only, never a path
};

struct FileTrailer {
  std::uint64_t size = 0;  // as in the header
  FileDigest digest{};
};

// Writes the header into out (the name cut to fit, on a character boundary
// for UTF-8); its length, 0 when out cannot hold even the fixed part.
std::size_t encodeFileHeader(const FileHeader& header, std::span<std::uint8_t> out) noexcept;
// EBADMSG naming what is wrong: short, bad magic, other version, unknown
// digest, chunk size 0, a name with '/' or NUL or longer than the payload.
Result<FileHeader> decodeFileHeader(std::span<const std::uint8_t> payload);
std::size_t encodeFileTrailer(const FileTrailer& trailer, std::span<std::uint8_t> out) noexcept;
Result<FileTrailer> decodeFileTrailer(std::span<const std::uint8_t> payload);

// Stream bytes of a file of `size` sent in payloads of chunkBytes with this
// name: header + file + trailer (what the receiver's REPORT must count).
std::uint64_t fileStreamBytes(const FileHeader& header) noexcept;
// Data payloads of a file: ceil(size / chunkBytes).
std::uint64_t fileDataPayloads(std::uint64_t size, std::uint32_t chunkBytes) noexcept;
// The last path component of `path` ("a/b/c.bin" -> "c.bin"; "/" and "" -> "").
std::string fileBaseName(std::string_view path);
std::string toHex(std::span<const std::uint8_t> bytes);
// For reports: valid UTF-8 is kept, control characters and bytes that are not
// UTF-8 become '?' (a name from the peer must not drive the terminal, and
// the JSON writer accepts only UTF-8).
std::string printableName(std::string_view name);

enum class FilePart : std::uint8_t { kHeader, kData, kTrailer };

// Checks a received file stream payload by payload, in the order the
// connection delivers them. Every error is EBADMSG with one readable line;
// after an error the parser stays failed.
class FileStreamParser {
 public:
  // seq: the payload's global sequence number (a gap means a payload was
  // lost: the stream is only good when every one arrives).
  Result<FilePart> feed(std::uint64_t seq, std::span<const std::uint8_t> payload);
  // At the end of the stream: EBADMSG unless the trailer arrived.
  Result<void> finish() const;

  bool headerSeen() const noexcept { return state_ != State::kHeader; }
  bool complete() const noexcept { return state_ == State::kDone; }
  const FileHeader& header() const noexcept { return header_; }
  const FileTrailer& trailer() const noexcept { return trailer_; }
  std::uint64_t dataBytes() const noexcept { return dataBytes_; }

 private:
  enum class State : std::uint8_t { kHeader, kData, kTrailer, kDone, kFailed };
  Error fail(const std::string& what);

  State state_ = State::kHeader;
  std::uint64_t nextSeq_ = 0;
  std::uint64_t dataBytes_ = 0;
  FileHeader header_;
  FileTrailer trailer_;
};

}  // namespace mpxdp::cli
