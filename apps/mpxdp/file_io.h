// Disk side of `mpxdp send -F` / `mpxdp recv -F`: SHA-256 (OpenSSL EVP),
// the checks made before connecting, a temporary file that disappears unless
// committed, and the payload source and sink that stream a file from and to
// disk through large buffers (no whole-file buffering, nothing allocated per
// payload). The stream format is file_stream.h.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "file_stream.h"
#include "mpxdp/error.h"
#include "transfer.h"

struct evp_md_ctx_st;

namespace mpxdp::cli {

// Large sequential disk I/O: reads and writes in buffers of about this size.
inline constexpr std::size_t kFileIoBufferBytes = 4U << 20;

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
// Where recv -F will write: the directory must exist and take a new file
// (tried for real); an existing PATH must be a regular file (it is replaced
// only by a verified transfer). ENOENT, ENOTDIR, EACCES, EROFS, EISDIR, EINVAL.
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

// Buffers passed in order between the network loop and a disk thread: one
// side takes a free buffer, fills it and puts it full; the other takes it
// full, empties it and puts it free. Locks once per buffer, never per payload.
class BufferPipe {
 public:
  struct Buffer {
    std::vector<std::uint8_t> bytes;
    std::size_t length = 0;
  };
  BufferPipe(std::size_t count, std::size_t bytes);
  Buffer& buffer(std::size_t index) noexcept { return buffers_[index]; }
  std::size_t capacity() const noexcept { return buffers_.front().bytes.size(); }
  // Wait for a buffer; nullopt once closed (takeFull still hands out what was put full before).
  std::optional<std::size_t> takeFree();
  std::optional<std::size_t> takeFull();
  void putFull(std::size_t index);
  void putFree(std::size_t index);
  // Waits until every buffer is free again (the consumer of full ones is idle).
  void waitAllFree();
  void close();

 private:
  std::vector<Buffer> buffers_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::size_t> free_;
  std::deque<std::size_t> full_;
  bool closed_ = false;
};

// Disk buffers per side: one being filled, one being emptied, one spare.
inline constexpr std::size_t kFileIoBuffers = 3;

// mpxdp send -F: header, the file in payloads of chunkBytes, trailer. A
// reader thread reads the file ahead in large sequential reads and hashes it;
// the send loop only copies payloads out of its buffers.
class FileSource final : public PayloadSource {
 public:
  // Takes the descriptor of openSourceFile.
  FileSource(std::string path, SourceFile file);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  // Before the first fill: payload size (>= kMinFilePayload); allocates the
  // buffers and starts the reader.
  void start(std::uint32_t chunkBytes);

  Result<std::uint32_t> fill(std::uint8_t* data, std::uint32_t capacity) noexcept override;
  FileProgress progress() const noexcept override { return {sent_, size_, true}; }
  bool complete() const noexcept { return state_ == State::kDone; }
  // Header + file + trailer: what the receiver's REPORT must count.
  std::uint64_t streamBytes() const noexcept;
  FileSummary summary() const;

 private:
  enum class State : std::uint8_t { kHeader, kData, kTrailer, kDone };
  void readLoop();
  void stopReader() noexcept;

  std::string path_;
  int fd_;
  std::uint64_t size_;
  std::uint32_t chunk_ = 0;
  State state_ = State::kHeader;
  std::unique_ptr<BufferPipe> pipe_;
  std::thread reader_;
  std::optional<std::size_t> current_;  // the buffer the loop sends from
  std::size_t cursor_ = 0;              // next byte of it to send
  std::uint64_t sent_ = 0;              // file bytes put in payloads
  std::uint64_t waitNs_ = 0;            // the loop waited for the reader
  // The reader's (read once it has stopped, or atomically).
  std::atomic<std::uint64_t> ioNs_{0};
  std::optional<Error> readError_;  // set by the reader before it closes the pipe
  Sha256 hash_;
  std::optional<FileDigest> digest_;
};

// mpxdp recv -F: checks the stream and hands the file's bytes to a writer
// thread that hashes them and writes them to a temporary file in large
// batches; after a matching trailer commit() puts the file in place.
class FileSink final : public PayloadSink {
 public:
  // Creates the temporary file beside path and starts the writer.
  static Result<std::unique_ptr<FileSink>> create(const std::string& path);
  ~FileSink() override;
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;
  Result<void> consume(std::uint64_t seq, std::span<const std::uint8_t> payload) noexcept override;
  FileProgress progress() const noexcept override;
  // After the connection ended normally: the stream must be complete and its
  // digest checked; fsyncs and renames onto the path.
  Result<void> commit();
  // Stops the writer and removes the temporary file (also on destruction when not committed).
  void discard() noexcept;
  const std::string& tempPath() const noexcept { return temp_->path(); }
  FileSummary summary() const;

 private:
  FileSink(std::string path, std::unique_ptr<TempFile> temp);
  void writeLoop();
  void stopWriter() noexcept;
  // Hands the buffer being filled to the writer.
  void submit();
  std::optional<Error> writeError();

  std::string path_;
  std::unique_ptr<TempFile> temp_;
  FileStreamParser parser_;
  std::unique_ptr<BufferPipe> pipe_;
  std::thread writer_;
  std::optional<std::size_t> current_;  // the buffer the loop fills
  std::uint64_t waitNs_ = 0;            // the loop waited for a free buffer
  std::atomic<std::uint64_t> ioNs_{0};  // the writer's hashing and writing
  std::atomic<bool> failed_{false};
  std::mutex errorMutex_;
  std::optional<Error> error_;  // the writer's
  std::uint64_t written_ = 0;   // the writer's: bytes in the temporary file
  std::uint64_t syncNs_ = 0;
  Sha256 hash_;  // the writer's until it is stopped or idle
  std::optional<FileDigest> digest_;
  bool verified_ = false;
  bool committed_ = false;
};

}  // namespace mpxdp::cli
