#include "file_io.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <cstring>

#include "run_control.h"

namespace mpxdp::cli {
namespace {

// "dir/name" -> "dir", "name" -> ".", "/name" -> "/".
std::string directoryOf(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string inQuotes(const std::string& path) { return "'" + path + "'"; }

// strerror text for the usage messages, which print the context only.
std::string reason(int code) { return std::strerror(code); }

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  // Only allocation failure can make these fail; update() then does nothing
  // and the digest cannot match, so a broken hash never passes as verified.
  if (ctx_ != nullptr && EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx_);
    ctx_ = nullptr;
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(std::span<const std::uint8_t> bytes) noexcept {
  if (ctx_ != nullptr && !bytes.empty()) (void)EVP_DigestUpdate(ctx_, bytes.data(), bytes.size());
}

FileDigest Sha256::final() noexcept {
  FileDigest digest{};
  unsigned int length = 0;
  if (ctx_ == nullptr || EVP_DigestFinal_ex(ctx_, digest.data(), &length) != 1 || length != digest.size()) {
    digest.fill(0);
  }
  return digest;
}

Result<SourceFile> openSourceFile(const std::string& path) {
  if (path.empty()) return Error(EINVAL, "-F needs a file name");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int code = errno;
    if (code == ENOENT) return Error(ENOENT, "-F " + inQuotes(path) + ": no such file");
    return Error(code, "-F " + inQuotes(path) + ": cannot be read: " + reason(code));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int code = errno;
    ::close(fd);
    return Error(code, "-F " + inQuotes(path) + ": " + reason(code));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Error(EISDIR, "-F " + inQuotes(path) + " is a directory: give a file");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error(EINVAL, "-F " + inQuotes(path) + " is not a regular file (its size must be known up front)");
  }
  return SourceFile{fd, static_cast<std::uint64_t>(st.st_size)};
}

Result<void> checkDestination(const std::string& path) {
  if (path.empty()) return Error(EINVAL, "-F needs a file name");
  if (path.back() == '/' || fileBaseName(path).empty() || fileBaseName(path) == "." ||
      fileBaseName(path) == "..") {
    return Error(EISDIR, "-F " + inQuotes(path) + " names a directory: give a file name");
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode))
      return Error(EISDIR, "-F " + inQuotes(path) + " is a directory: give a file name");
    if (!S_ISREG(st.st_mode)) {
      return Error(EINVAL, "-F " + inQuotes(path) +
                               " exists and is not a regular file (a verified transfer would replace it)");
    }
  } else if (errno != ENOENT && errno != ENOTDIR) {  // ENOTDIR: the directory check below says which
    const int code = errno;
    return Error(code, "-F " + inQuotes(path) + ": " + reason(code));
  }
  const std::string dir = directoryOf(path);
  if (::stat(dir.c_str(), &st) != 0) {
    const int code = errno;
    if (code == ENOENT)
      return Error(ENOENT, "-F " + inQuotes(path) + ": directory " + inQuotes(dir) + " does not exist");
    return Error(code, "-F " + inQuotes(path) + ": directory " + inQuotes(dir) + ": " + reason(code));
  }
  if (!S_ISDIR(st.st_mode))
    return Error(ENOTDIR, "-F " + inQuotes(path) + ": " + inQuotes(dir) + " is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    const int code = errno;
    return Error(code == EROFS ? EROFS : EACCES, "-F " + inQuotes(path) + ": directory " + inQuotes(dir) +
                                                     " is not writable: " + reason(code));
  }
  // access() lets root through everywhere (also /proc and /sys): create a
  // file there once for real, and remove it.
  std::string probe = dir + "/.mpxdp-probe-XXXXXX";
  const int fd = mkostemp(probe.data(), O_CLOEXEC);
  if (fd < 0) {
    const int code = errno;
    return Error(code == EROFS ? EROFS : EACCES, "-F " + inQuotes(path) +
                                                     ": cannot create a file in directory " + inQuotes(dir) +
                                                     ": " + reason(code));
  }
  ::close(fd);
  (void)::unlink(probe.c_str());
  return {};
}

Result<std::unique_ptr<TempFile>> TempFile::create(const std::string& finalPath) {
  // Keep the name within NAME_MAX with the prefix and suffix around it.
  std::string base = fileBaseName(finalPath).substr(0, 200);
  std::string path = directoryOf(finalPath) + "/." + base + ".mpxdp-XXXXXX";
  const int fd = mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return Error::fromErrno("cannot create a temporary file beside " + inQuotes(finalPath));
  return std::unique_ptr<TempFile>(new TempFile(fd, std::move(path), finalPath));
}

TempFile::~TempFile() { discard(); }

void TempFile::discard() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!done_) {
    (void)::unlink(path_.c_str());
    done_ = true;
  }
}

Result<void> TempFile::commit() {
  if (done_) return Error(EINVAL, "the temporary file is gone");
  auto failed = [this](const char* step) {
    Error error = Error::fromErrno(std::string(step) + " " + inQuotes(path_));
    discard();
    return error;
  };
  if (::fsync(fd_) != 0) return failed("fsync");
  // mkstemp made it 0600; the file gets what a plain create would give it.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd_, 0666 & ~mask) != 0) return failed("fchmod");
  if (::close(fd_) != 0) {
    fd_ = -1;
    return failed("close");
  }
  fd_ = -1;
  if (::rename(path_.c_str(), finalPath_.c_str()) != 0)
    return failed(("rename onto " + inQuotes(finalPath_) + ":").c_str());
  done_ = true;
  // The rename itself must reach the disk too.
  const int dir = ::open(directoryOf(finalPath_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    (void)::fsync(dir);
    ::close(dir);
  }
  return {};
}

BufferPipe::BufferPipe(std::size_t count, std::size_t bytes) : buffers_(count) {
  for (std::size_t i = 0; i < count; ++i) {
    buffers_[i].bytes.assign(bytes, 0);
    free_.push_back(i);
  }
}

std::optional<std::size_t> BufferPipe::takeFree() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return closed_ || !free_.empty(); });
  if (closed_) return std::nullopt;
  const std::size_t index = free_.front();
  free_.pop_front();
  return index;
}

std::optional<std::size_t> BufferPipe::takeFull() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return closed_ || !full_.empty(); });
  if (full_.empty()) return std::nullopt;
  const std::size_t index = full_.front();
  full_.pop_front();
  return index;
}

void BufferPipe::putFull(std::size_t index) {
  {
    std::lock_guard lock(mutex_);
    full_.push_back(index);
  }
  changed_.notify_all();
}

void BufferPipe::putFree(std::size_t index) {
  {
    std::lock_guard lock(mutex_);
    free_.push_back(index);
  }
  changed_.notify_all();
}

void BufferPipe::waitAllFree() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return free_.size() == buffers_.size(); });
}

void BufferPipe::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

FileSource::FileSource(std::string path, SourceFile file)
    : path_(std::move(path)), fd_(file.fd), size_(file.size) {
  (void)posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
}

FileSource::~FileSource() {
  stopReader();
  if (fd_ >= 0) ::close(fd_);
}

void FileSource::stopReader() noexcept {
  if (pipe_) pipe_->close();
  if (reader_.joinable()) reader_.join();
}

void FileSource::start(std::uint32_t chunkBytes) {
  chunk_ = std::max(chunkBytes, kMinFilePayload);
  // A whole number of payloads per buffer, so none straddles two reads.
  const std::size_t payloads = std::max<std::size_t>(1, kFileIoBufferBytes / chunk_);
  pipe_ = std::make_unique<BufferPipe>(kFileIoBuffers, payloads * chunk_);
  if (size_ > 0) reader_ = std::thread([this] { readLoop(); });
}

std::uint64_t FileSource::streamBytes() const noexcept {
  FileHeader header;
  header.size = size_;
  header.chunkBytes = chunk_;
  header.name = fileBaseName(path_);
  return fileStreamBytes(header);
}

// The reader thread: fills free buffers with the file in order and hashes
// them, then computes the digest. On an error it closes the pipe.
void FileSource::readLoop() {
  std::uint64_t read = 0;
  while (read < size_) {
    const auto index = pipe_->takeFree();
    if (!index) return;  // stopped
    BufferPipe::Buffer& buffer = pipe_->buffer(*index);
    const std::uint64_t begin = monotonicNs();
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.bytes.size(), size_ - read));
    std::size_t got = 0;
    while (got < want) {
      const ssize_t n = ::read(fd_, buffer.bytes.data() + got, want - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        readError_ = n < 0
                         ? Error::fromErrno("reading " + inQuotes(path_))
                         : Error(EIO, fmt::format("{} shrank while being sent: it ended after {} of {} bytes",
                                                  inQuotes(path_), read + got, size_));
        pipe_->close();
        return;
      }
      got += static_cast<std::size_t>(n);
    }
    read += got;
    // Ask for the next buffer's worth ahead of time.
    if (read < size_) {
      (void)posix_fadvise(fd_, static_cast<off_t>(read), static_cast<off_t>(buffer.bytes.size()),
                          POSIX_FADV_WILLNEED);
    }
    hash_.update({buffer.bytes.data(), got});
    buffer.length = got;
    ioNs_ += monotonicNs() - begin;
    pipe_->putFull(*index);
  }
  digest_ = hash_.final();
}

Result<std::uint32_t> FileSource::fill(std::uint8_t* data, std::uint32_t capacity) noexcept {
  const std::uint32_t room = std::min(capacity, chunk_);
  switch (state_) {
    case State::kHeader: {
      FileHeader header;
      header.size = size_;
      header.chunkBytes = chunk_;
      header.name = fileBaseName(path_);
      const std::size_t n = encodeFileHeader(header, {data, room});
      if (n == 0)
        return Error(EMSGSIZE, fmt::format("a payload of {} bytes cannot hold the file header", room));
      state_ = size_ == 0 ? State::kTrailer : State::kData;
      return static_cast<std::uint32_t>(n);
    }
    case State::kData: {
      if (current_ && cursor_ == pipe_->buffer(*current_).length) {
        pipe_->putFree(*current_);
        current_.reset();
      }
      if (!current_) {
        const std::uint64_t begin = monotonicNs();
        current_ = pipe_->takeFull();
        waitNs_ += monotonicNs() - begin;
        // Closed with nothing left: the reader failed (it wrote readError_ before closing).
        if (!current_) return readError_.value_or(Error(EIO, "the file reader stopped"));
        cursor_ = 0;
      }
      const BufferPipe::Buffer& buffer = pipe_->buffer(*current_);
      const auto length = static_cast<std::uint32_t>(std::min<std::uint64_t>(chunk_, size_ - sent_));
      if (length > room || cursor_ + length > buffer.length)
        return Error(EMSGSIZE, fmt::format("a payload slot of {} bytes is short of {}", capacity, length));
      std::memcpy(data, buffer.bytes.data() + cursor_, length);
      cursor_ += length;
      sent_ += length;
      if (sent_ == size_) state_ = State::kTrailer;
      return length;
    }
    case State::kTrailer: {
      // The reader has read and hashed everything: it ends with the digest.
      stopReader();
      if (size_ == 0) digest_ = hash_.final();
      if (!digest_) return readError_.value_or(Error(EIO, "the file reader stopped"));
      FileTrailer trailer;
      trailer.size = size_;
      trailer.digest = *digest_;
      const std::size_t n = encodeFileTrailer(trailer, {data, room});
      if (n == 0) return Error(EMSGSIZE, fmt::format("a payload of {} bytes cannot hold the trailer", room));
      state_ = State::kDone;
      return static_cast<std::uint32_t>(n);
    }
    case State::kDone:
      break;
  }
  return 0U;
}

FileSummary FileSource::summary() const {
  FileSummary s;
  s.path = path_;
  s.name = fileBaseName(path_);
  s.size = size_;
  s.bytes = sent_;
  s.chunkBytes = chunk_;
  if (state_ == State::kDone && digest_) s.sha256 = toHex(*digest_);
  s.ioNs = ioNs_.load();
  s.ioWaitNs = waitNs_;
  s.streamBytes = streamBytes();
  return s;
}

Result<std::unique_ptr<FileSink>> FileSink::create(const std::string& path) {
  auto temp = TempFile::create(path);
  if (!temp) return temp.error();
  std::unique_ptr<FileSink> sink(new FileSink(path, std::move(*temp)));
  sink->writer_ = std::thread([raw = sink.get()] { raw->writeLoop(); });
  return sink;
}

FileSink::FileSink(std::string path, std::unique_ptr<TempFile> temp)
    : path_(std::move(path)),
      temp_(std::move(temp)),
      pipe_(std::make_unique<BufferPipe>(kFileIoBuffers, kFileIoBufferBytes)) {}

FileSink::~FileSink() { discard(); }

void FileSink::stopWriter() noexcept {
  pipe_->close();
  if (writer_.joinable()) writer_.join();
}

void FileSink::discard() noexcept {
  failed_ = true;  // the writer skips what is still queued
  stopWriter();
  if (!committed_) temp_->discard();
}

FileProgress FileSink::progress() const noexcept {
  return {parser_.dataBytes(), parser_.header().size, parser_.headerSeen()};
}

std::optional<Error> FileSink::writeError() {
  std::lock_guard lock(errorMutex_);
  return error_;
}

// The writer thread: hashes and writes full buffers in order. After an
// error it only hands buffers back, so the loop never waits forever.
void FileSink::writeLoop() {
  while (const auto index = pipe_->takeFull()) {
    BufferPipe::Buffer& buffer = pipe_->buffer(*index);
    if (!failed_) {
      const std::uint64_t begin = monotonicNs();
      hash_.update({buffer.bytes.data(), buffer.length});
      std::size_t done = 0;
      while (done < buffer.length) {
        const ssize_t n = ::write(temp_->fd(), buffer.bytes.data() + done, buffer.length - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          std::lock_guard lock(errorMutex_);
          error_ = Error::fromErrno("writing " + inQuotes(temp_->path()));
          failed_ = true;
          break;
        }
        done += static_cast<std::size_t>(n);
      }
      // Start writeback now, so the final fsync has little left to do.
      if (!failed_ && buffer.length > 0) {
        (void)sync_file_range(temp_->fd(), static_cast<off_t>(written_), static_cast<off_t>(buffer.length),
                              SYNC_FILE_RANGE_WRITE);
      }
      written_ += done;
      ioNs_ += monotonicNs() - begin;
    }
    buffer.length = 0;
    pipe_->putFree(*index);
  }
}

void FileSink::submit() {
  if (!current_) return;
  pipe_->putFull(*current_);
  current_.reset();
}

Result<void> FileSink::consume(std::uint64_t seq, std::span<const std::uint8_t> payload) noexcept {
  auto part = parser_.feed(seq, payload);
  if (!part) return part.error();
  switch (*part) {
    case FilePart::kHeader:
      break;
    case FilePart::kData:
      while (!payload.empty()) {
        if (!current_) {
          if (failed_) return writeError().value_or(Error(EIO, "the file writer stopped"));
          const std::uint64_t begin = monotonicNs();
          current_ = pipe_->takeFree();
          waitNs_ += monotonicNs() - begin;
          if (!current_) return Error(EIO, "the file writer stopped");
        }
        BufferPipe::Buffer& buffer = pipe_->buffer(*current_);
        const std::size_t n = std::min(payload.size(), buffer.bytes.size() - buffer.length);
        std::memcpy(buffer.bytes.data() + buffer.length, payload.data(), n);
        buffer.length += n;
        payload = payload.subspan(n);
        if (buffer.length == buffer.bytes.size()) submit();
      }
      break;
    case FilePart::kTrailer: {
      // Everything goes to the writer; once it is idle its hash is complete.
      submit();
      const std::uint64_t begin = monotonicNs();
      pipe_->waitAllFree();
      waitNs_ += monotonicNs() - begin;
      if (auto error = writeError()) return *error;
      digest_ = hash_.final();
      if (*digest_ != parser_.trailer().digest) {
        return Error(EBADMSG, fmt::format("sha256 mismatch: the sender's {}, received {}",
                                          toHex(parser_.trailer().digest), toHex(*digest_)));
      }
      verified_ = true;
      break;
    }
  }
  return {};
}

Result<void> FileSink::commit() {
  if (committed_) return {};
  if (auto finished = parser_.finish(); !finished) {
    discard();
    return finished.error();
  }
  if (!verified_) {
    discard();
    return Error(EBADMSG, "sha256 mismatch");
  }
  // The trailer's check left the writer idle with everything written.
  stopWriter();
  if (auto error = writeError()) {
    discard();
    return *error;
  }
  const std::uint64_t begin = monotonicNs();
  auto committed = temp_->commit();
  syncNs_ = monotonicNs() - begin;
  ioNs_ += syncNs_;
  if (!committed) return committed.error();
  committed_ = true;
  return {};
}

FileSummary FileSink::summary() const {
  FileSummary s;
  s.path = path_;
  s.name = parser_.header().name;
  s.size = parser_.header().size;
  s.bytes = parser_.dataBytes();
  s.chunkBytes = parser_.header().chunkBytes;
  if (digest_) s.sha256 = toHex(*digest_);
  if (parser_.complete()) s.peerSha256 = toHex(parser_.trailer().digest);
  s.verified = committed_;
  s.ioNs = ioNs_.load();
  s.ioWaitNs = waitNs_;
  s.syncNs = syncNs_;
  if (parser_.headerSeen()) s.streamBytes = fileStreamBytes(parser_.header());
  return s;
}

}  // namespace mpxdp::cli
