// mpxdp genkey: a new random pre-shared key for --key (base64), on stdout or
// into a new file that only its owner may read (as `wg genkey`, plus -o so a
// shell's umask cannot leave the key readable by others).
#include <fcntl.h>
#include <unistd.h>

#include <fmt/core.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "commands.h"
#include "mpxdp/security.h"

namespace mpxdp::cli {
namespace {

std::string outputPath;

Result<void> writeNewKeyFile(const std::string& path, const std::string& key) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Error(errno,
                 path + (errno == EEXIST ? ": exists; a key file is never overwritten" : ": cannot create"));
  }
  const std::string line = key + "\n";
  const ssize_t written = ::write(fd, line.data(), line.size());
  const int writeErrno = errno;
  const int closed = ::close(fd);
  if (written != static_cast<ssize_t>(line.size()) || closed != 0) {
    ::unlink(path.c_str());
    return Error(written < 0 ? writeErrno : EIO, path + ": cannot write the key");
  }
  return {};
}

}  // namespace

void declareGenkey(CLI::App* app) {
  app->add_option("-o,--output", outputPath,
                  "write the key into this new file (mode 600) instead of printing it; never overwrites")
      ->type_name("FILE");
}

int runGenkey(CLI::App* /*app*/) {
  auto key = generateKey();
  if (!key) return reportError("genkey", key.error());
  if (outputPath.empty()) {
    fmt::print("{}\n", *key);
    return kExitOk;
  }
  if (auto written = writeNewKeyFile(outputPath, *key); !written)
    return reportError("genkey", written.error());
  return kExitOk;
}

}  // namespace mpxdp::cli
