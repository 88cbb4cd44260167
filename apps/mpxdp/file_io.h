// Disk side of `mpxdp send -F` / `mpxdp recv -F`: SHA-256 (OpenSSL EVP),
// the checks made before connecting, a temporary file that disappears unless
// committed, and the payload source and sink that stream a file from and to
// disk through large buffers (no whole-file buffering, nothing allocated per
// payload). The stream format is file_stream.h.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "file_stream.h"
#include "mpxdp/error.h"
#include "transfer.h"

struct evp_md_ctx_st;

namespace mpxdp::cli {

// Large sequential disk I/O: reads and writes in buffers of about this size.
inline constexpr std::size_t kFileIoBufferBytes = 4U << 20;
// Hashing steps: the digest follows the payloads in pieces this large, so no
// single step stalls the send or receive loop for long.
inline constexpr std::size_t kFileHashStepBytes = 256U << 10;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::span<const std::uint8_t> bytes) noexcept;
  FileDigest final() noexcept;  // once

 private:
  evp_md_ctx_st* ctx_;
};

// A file's size and the descriptor it was checked through.
struct SourceFile {
  int fd = -1;
  std::uint64_t size = 0;
};
// Opens `path` for reading: ENOENT, EACCES (usage errors: say which file),
// EISDIR for a directory, EINVAL for anything but a regular file.
Result<SourceFile> openSourceFile(const std::string& path);
// Where recv -F will write: the directory must exist and be writable; an
// existing PATH must be a regular file (it is replaced only by a verified
// transfer). ENOENT, ENOTDIR, EACCES, EISDIR, EINVAL.
Result<void> checkDestination(const std::string& path);

// A temporary file `.NAME.mpxdp-XXXXXX` beside `finalPath`, unlinked on
// destruction unless committed (renamed onto finalPath).
class TempFile {
 public:
  static Result<std::unique_ptr<TempFile>> create(const std::string& finalPath);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  int fd() const noexcept { return fd_; }
  const std::string& path() const noexcept { return path_; }
  // fsync, mode 0666 & ~umask (mkstemp made it 0600), rename onto the final
  // path, fsync the directory. Unlinks the temporary file when any step fails.
  Result<void> commit();
  // Closes and unlinks (idempotent).
  void discard() noexcept;

 private:
  TempFile(int fd, std::string path, std::string finalPath)
      : fd_(fd), path_(std::move(path)), finalPath_(std::move(finalPath)) {}
  int fd_;
  std::string path_;
  std::string finalPath_;
  bool done_ = false;
};

// mpxdp send -F: header, the file in payloads of chunkBytes, trailer.
class FileSource final : public PayloadSource {
 public:
  // Takes the descriptor of openSourceFile.
  FileSource(std::string path, SourceFile file);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  // Before the first fill: payload size (>= kMinFilePayload), allocates the read buffer.
  void start(std::uint32_t chunkBytes);

  Result<std::uint32_t> fill(std::uint8_t* data, std::uint32_t capacity) noexcept override;
  FileProgress progress() const noexcept override { return {sent_, size_, true}; }
  bool complete() const noexcept { return state_ == State::kDone; }
  // Header + file + trailer: what the receiver's REPORT must count.
  std::uint64_t streamBytes() const noexcept;
  FileSummary summary() const;

 private:
  enum class State : std::uint8_t { kHeader, kData, kTrailer, kDone };
  Result<void> refill() noexcept;
  void hashUpTo(std::size_t end) noexcept;

  std::string path_;
  int fd_;
  std::uint64_t size_;
  std::uint32_t chunk_ = 0;
  State state_ = State::kHeader;
  std::vector<std::uint8_t> buffer_;
  std::size_t filled_ = 0;  // valid bytes in buffer_
  std::size_t cursor_ = 0;  // next byte to send
  std::size_t hashed_ = 0;  // bytes of buffer_ already hashed
  std::uint64_t read_ = 0;  // file bytes read so far
  std::uint64_t sent_ = 0;  // file bytes put in payloads
  std::uint64_t ioNs_ = 0;
  Sha256 hash_;
  std::optional<FileDigest> digest_;
};

// mpxdp recv -F: checks the stream, writes the file to a temporary file in
// large batches, and after a matching trailer commit() puts it in place.
class FileSink final : public PayloadSink {
 public:
  // Creates the temporary file beside path.
  static Result<std::unique_ptr<FileSink>> create(const std::string& path);
  Result<void> consume(std::uint64_t seq, std::span<const std::uint8_t> payload) noexcept override;
  FileProgress progress() const noexcept override;
  // After the connection ended normally: the stream must be complete and its
  // digest checked; writes the rest, fsyncs and renames onto the path.
  Result<void> commit();
  // Removes the temporary file (also on destruction when not committed).
  void discard() noexcept { temp_->discard(); }
  const std::string& tempPath() const noexcept { return temp_->path(); }
  FileSummary summary() const;

 private:
  FileSink(std::string path, std::unique_ptr<TempFile> temp);
  Result<void> writeOut() noexcept;
  void hashUpTo(std::size_t end) noexcept;

  std::string path_;
  std::unique_ptr<TempFile> temp_;
  FileStreamParser parser_;
  std::vector<std::uint8_t> buffer_;
  std::size_t filled_ = 0;
  std::size_t hashed_ = 0;
  std::uint64_t written_ = 0;  // bytes written to the temporary file
  std::uint64_t ioNs_ = 0;
  std::uint64_t syncNs_ = 0;
  Sha256 hash_;
  std::optional<FileDigest> digest_;
  bool verified_ = false;
  bool committed_ = false;
};

}  // namespace mpxdp::cli
