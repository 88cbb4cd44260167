// `mpxdp send -F` and `mpxdp recv -F` as separate processes over a 3-link
// test bed (3 x 300 Mbit/s): a file of random bytes arrives byte for byte
// with both sides' SHA-256 in agreement, also with 1 % loss on one link and
// with a link cut mid-transfer (reliable mode); a peer killed mid-transfer
// makes the other side fail within its --abort-timeout, and the receiver then
// leaves neither the file nor its temporary file behind; a file to a receiver
// without -F, or the test pattern to one with -F, is refused on both sides.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backend_args.h"
#include "file_io.h"
#include "file_stream.h"
#include "privilege.h"
#include "subprocess.h"
#include "testbed.h"

namespace mpxdp {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testbed::Subprocess;

constexpr std::uint64_t kFileBytes = 200'000'000;
constexpr std::uint64_t kKillFileBytes = 100'000'000;

// A scratch directory under /var/tmp (a disk, as a real transfer), removed with its contents.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    std::string tmpl = "/var/tmp/mpxdp-file-transfer-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

// `size` random bytes from /dev/urandom, written in 4 MiB pieces.
bool writeRandomFile(const fs::path& path, std::uint64_t size) {
  const int in = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  const int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  std::vector<char> buffer(4U << 20);
  bool ok = in >= 0 && out >= 0;
  for (std::uint64_t done = 0; ok && done < size;) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), size - done));
    const ssize_t got = ::read(in, buffer.data(), want);
    ok = got > 0 && ::write(out, buffer.data(), static_cast<std::size_t>(got)) == got;
    done += got > 0 ? static_cast<std::uint64_t>(got) : 0;
  }
  if (in >= 0) ::close(in);
  if (out >= 0) ::close(out);
  return ok;
}

// Compares two files byte for byte, in large pieces.
bool sameContent(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  if (fs::file_size(a, ec) != fs::file_size(b, ec) || ec) return false;
  std::FILE* fa = std::fopen(a.c_str(), "rb");
  std::FILE* fb = std::fopen(b.c_str(), "rb");
  bool same = fa != nullptr && fb != nullptr;
  std::vector<char> ba(1U << 20), bb(1U << 20);
  while (same) {
    const std::size_t na = std::fread(ba.data(), 1, ba.size(), fa);
    const std::size_t nb = std::fread(bb.data(), 1, bb.size(), fb);
    same = na == nb && std::memcmp(ba.data(), bb.data(), na) == 0;
    if (na == 0) break;
  }
  if (fa) std::fclose(fa);
  if (fb) std::fclose(fb);
  return same;
}

std::string sha256Of(const fs::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return "";
  cli::Sha256 hash;
  std::vector<std::uint8_t> buffer(1U << 20);
  for (std::size_t n; (n = std::fread(buffer.data(), 1, buffer.size(), f)) > 0;)
    hash.update({buffer.data(), n});
  std::fclose(f);
  return cli::toHex(hash.final());
}

testbed::TestbedSpec threeLinks(const std::string& suffix, std::vector<double> loss = {}) {
  return {"f9" + std::to_string(getpid()) + suffix,
          {300'000'000, 300'000'000, 300'000'000},
          1500,
          1,
          {},
          std::move(loss)};
}

std::vector<std::string> receiverArgs(const testbed::TestbedInfo& bed, const fs::path& target) {
  return test::withTestBackend({MPXDP_EXECUTABLE, "recv", "--testbed", bed.name, "-F", target.string(), "-J",
                                "-i", "1", "--abort-timeout", "2"});
}

std::vector<std::string> senderArgs(const testbed::TestbedInfo& bed, const fs::path& source,
                                    std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {
      MPXDP_EXECUTABLE,  "send", "--testbed", bed.name, "-F", source.string(), "-J", "-i", "1",
      "--abort-timeout", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  return test::withTestBackend(std::move(args));
}

std::optional<Subprocess> startReceiver(const testbed::TestbedInfo& bed, const fs::path& target) {
  auto receiver = Subprocess::spawn(receiverArgs(bed, target));
  if (!receiver) {
    ADD_FAILURE() << receiver.error().message();
    return std::nullopt;
  }
  if (!receiver->waitForStderr("mpxdp recv: ready", 20s)) {
    ADD_FAILURE() << "receiver not ready; stderr: " << receiver->err();
    return std::nullopt;
  }
  return std::move(*receiver);
}

nlohmann::json parse(const std::string& text) { return nlohmann::json::parse(text, nullptr, false); }

// Waits until the receiver's temporary file exists (the transfer is under way).
bool waitForTempFile(const ScratchDir& dir, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    for (const auto& name : dir.entries()) {
      if (name.rfind(".received.bin.mpxdp-", 0) == 0 && fs::file_size(dir.path / name) > 0) return true;
    }
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

class FileTransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MPXDP_REQUIRE_PRIVILEGED();
    ASSERT_FALSE(dir_.path.empty());
  }

  enum class Side : std::uint8_t { kSender, kReceiver };
  struct KillRun {
    std::optional<Subprocess> survivor;  // the side left running
    std::optional<int> status;           // its exit status (nullopt: still running after 15 s)
    double afterS = 0;                   // seconds from the kill to its exit
  };

  // Sends source at 200 Mbit/s (100 MB take about 4 s) and SIGKILLs one side
  // half a second after the receiver's temporary file appeared.
  std::optional<KillRun> killMidTransfer(const testbed::TestbedInfo& bed, const fs::path& source,
                                         const fs::path& target, Side victim) {
    auto receiver = startReceiver(bed, target);
    if (!receiver) return std::nullopt;
    auto sender = Subprocess::spawn(senderArgs(bed, source, {"-b", "200M"}));
    if (!sender) {
      ADD_FAILURE() << sender.error().message();
      return std::nullopt;
    }
    if (!waitForTempFile(dir_, 10s)) {
      ADD_FAILURE() << "no temporary file; receiver stderr: " << receiver->err();
      return std::nullopt;
    }
    std::this_thread::sleep_for(500ms);
    KillRun run;
    (victim == Side::kSender ? *sender : *receiver).signal(SIGKILL);
    const auto killedAt = std::chrono::steady_clock::now();
    if (victim == Side::kSender) {
      run.survivor.emplace(std::move(*receiver));
    } else {
      run.survivor.emplace(std::move(*sender));
    }
    run.status = run.survivor->wait(15s);
    run.afterS = secondsSince(killedAt);
    return run;
  }

  // A whole transfer of a kFileBytes file; `during` runs while it goes (link changes).
  void expectByteIdentical(const testbed::TestbedInfo& bed, const std::function<void()>& during = {}) {
    const fs::path source = dir_.path / "source.bin";
    const fs::path target = dir_.path / "received.bin";
    ASSERT_TRUE(writeRandomFile(source, kFileBytes));
    const std::string digest = sha256Of(source);
    auto receiver = startReceiver(bed, target);
    ASSERT_TRUE(receiver);
    auto sender = Subprocess::spawn(senderArgs(bed, source));
    ASSERT_TRUE(sender) << sender.error().message();
    if (during) during();
    const auto sent = sender->wait(90s);
    const auto received = receiver->wait(30s);
    ASSERT_TRUE(sent) << "sender still running; stderr: " << sender->err();
    ASSERT_TRUE(received) << "receiver still running; stderr: " << receiver->err();
    EXPECT_EQ(*sent, 0) << sender->err();
    EXPECT_EQ(*received, 0) << receiver->err();

    EXPECT_TRUE(sameContent(source, target)) << "the received file differs from the source";
    EXPECT_EQ(dir_.entries(), (std::vector<std::string>{"received.bin", "source.bin"}));
    const auto s = parse(sender->out());
    const auto r = parse(receiver->out());
    ASSERT_TRUE(s.is_object() && r.is_object()) << sender->out() << "\n" << receiver->out();
    std::printf(
        "goodput %.1f Mbit/s in %.2f s, retransmitted %llu, max stall %.1f ms; reader thread %.0f ms (send "
        "loop "
        "waited %.1f ms), writer thread %.0f ms with the final fsync %.0f ms (receive loop waited %.1f ms)\n",
        r.at("goodput_bps").get<double>() / 1e6, r.at("duration_s").get<double>(),
        static_cast<unsigned long long>(s.at("retransmitted").get<std::uint64_t>()),
        r.at("max_stall_ms").get<double>(), s.at("file").at("io_ns").get<double>() / 1e6,
        s.at("file").at("io_wait_ns").get<double>() / 1e6, r.at("file").at("io_ns").get<double>() / 1e6,
        r.at("file").at("sync_ns").get<double>() / 1e6, r.at("file").at("io_wait_ns").get<double>() / 1e6);
    EXPECT_EQ(s.at("reliable"), true);
    EXPECT_EQ(r.at("reliable"), true);
    EXPECT_EQ(s.at("ended_by"), "end of file");
    EXPECT_EQ(r.at("ended_by"), "end of stream");
    EXPECT_EQ(r.at("lost_packets").get<std::uint64_t>(), 0u);
    const auto& sf = s.at("file");
    const auto& rf = r.at("file");
    EXPECT_EQ(sf.at("sha256"), digest);
    EXPECT_EQ(rf.at("sha256"), digest);
    EXPECT_EQ(rf.at("sender_sha256"), digest);
    EXPECT_EQ(rf.at("verified"), true);
    EXPECT_EQ(sf.at("delivered"), true);
    EXPECT_EQ(sf.at("digest"), "sha256");
    EXPECT_EQ(rf.at("name"), "source.bin");
    EXPECT_EQ(rf.at("path"), target.string());
    EXPECT_EQ(sf.at("bytes").get<std::uint64_t>(), kFileBytes);
    EXPECT_EQ(rf.at("bytes").get<std::uint64_t>(), kFileBytes);
    EXPECT_GT(sf.at("io_ns").get<std::uint64_t>(), 0u);
    EXPECT_GT(rf.at("io_ns").get<std::uint64_t>(), 0u);
    EXPECT_TRUE(rf.at("error").is_null()) << rf.at("error");
    // The REPORT counted header + file + trailer, and intervals carry the file's progress.
    EXPECT_EQ(s.at("receiver").at("delivered_bytes"), sf.at("stream_bytes"));
    EXPECT_EQ(r.at("delivered_bytes"), rf.at("stream_bytes"));
    std::uint64_t intervalBytes = 0;
    for (const auto& interval : r.at("intervals"))
      intervalBytes += interval.at("file_bytes").get<std::uint64_t>();
    EXPECT_EQ(intervalBytes, kFileBytes);
    for (const char* key :
         {"retransmitted", "redundant_copies", "flow_blocked_ms", "max_stall_ms", "duplicates"}) {
      EXPECT_TRUE(s.contains(key)) << key;
      EXPECT_TRUE(r.contains(key)) << key;
    }
  }

  ScratchDir dir_;
};

TEST_F(FileTransferTest, LosslessLinksDeliverTheFileByteForByte) {
  auto bed = testbed::ScopedTestbed::create(threeLinks("a"));
  ASSERT_TRUE(bed) << bed.error().message();
  expectByteIdentical(bed->info());
}

// Needs the reliable core (retransmission): without it the receiver refuses the stream at the first gap.
TEST_F(FileTransferTest, OnePercentLossOnOneLinkIsRepaired) {
  auto bed = testbed::ScopedTestbed::create(threeLinks("b", {0, 1, 0}));
  ASSERT_TRUE(bed) << bed.error().message();
  expectByteIdentical(bed->info());
}

// Needs the reliable core: what link 1 had in flight when it went down must be sent again.
TEST_F(FileTransferTest, ALinkCutMidTransferLosesNothing) {
  auto bed = testbed::ScopedTestbed::create(threeLinks("c"));
  ASSERT_TRUE(bed) << bed.error().message();
  const std::string name = bed->info().name;
  expectByteIdentical(bed->info(), [&] {
    std::this_thread::sleep_for(800ms);
    auto down = testbed::setLink(name, 1, {.down = true});
    EXPECT_TRUE(down) << down.error().message();
    std::this_thread::sleep_for(700ms);
    auto up = testbed::setLink(name, 1, {.down = false});
    EXPECT_TRUE(up) << up.error().message();
  });
}

TEST_F(FileTransferTest, SenderKilledMidTransferLeavesNoFile) {
  auto bed = testbed::ScopedTestbed::create(threeLinks("k"));
  ASSERT_TRUE(bed) << bed.error().message();
  const fs::path source = dir_.path / "source.bin";
  const fs::path target = dir_.path / "received.bin";
  ASSERT_TRUE(writeRandomFile(source, kKillFileBytes));
  auto run = killMidTransfer(bed->info(), source, target, Side::kSender);
  ASSERT_TRUE(run);
  auto& receiver = run->survivor;
  const auto& received = run->status;
  const double after = run->afterS;
  ASSERT_TRUE(received) << "the receiver did not notice the sender's death; stderr: " << receiver->err();
  EXPECT_NE(*received, 0) << receiver->err();
  // --abort-timeout 2, plus the loop's report and cleanup.
  EXPECT_LT(after, 3.5) << receiver->err();
  EXPECT_NE(receiver->err().find("nothing heard from it"), std::string::npos) << receiver->err();
  EXPECT_EQ(dir_.entries(), std::vector<std::string>{"source.bin"});
  const auto r = parse(receiver->out());
  ASSERT_TRUE(r.is_object()) << receiver->out();
  EXPECT_EQ(r.at("file").at("verified"), false);
  EXPECT_FALSE(r.at("file").at("error").is_null());
  EXPECT_GT(r.at("file").at("bytes").get<std::uint64_t>(), 0u);
  EXPECT_LT(r.at("file").at("bytes").get<std::uint64_t>(), kKillFileBytes);
}

TEST_F(FileTransferTest, ReceiverKilledMidTransferFailsTheSender) {
  auto bed = testbed::ScopedTestbed::create(threeLinks("r"));
  ASSERT_TRUE(bed) << bed.error().message();
  const fs::path source = dir_.path / "source.bin";
  const fs::path target = dir_.path / "received.bin";
  ASSERT_TRUE(writeRandomFile(source, kKillFileBytes));
  // An older file at the target stays as it was.
  ASSERT_TRUE(writeRandomFile(target, 1000));
  const std::string before = sha256Of(target);
  auto run = killMidTransfer(bed->info(), source, target, Side::kReceiver);
  ASSERT_TRUE(run);
  auto& sender = run->survivor;
  const auto& sent = run->status;
  const double after = run->afterS;
  ASSERT_TRUE(sent) << "the sender did not notice the receiver's death; stderr: " << sender->err();
  EXPECT_NE(*sent, 0) << sender->err();
  EXPECT_LT(after, 3.5) << sender->err();
  EXPECT_EQ(sha256Of(target), before);
  const auto s = parse(sender->out());
  ASSERT_TRUE(s.is_object()) << sender->out();
  EXPECT_EQ(s.at("file").at("delivered"), false);
  EXPECT_LT(s.at("file").at("bytes").get<std::uint64_t>(), kKillFileBytes);
  // One line on stderr says why.
  EXPECT_EQ(std::count(sender->err().begin(), sender->err().end(), '\n'), 1) << sender->err();
  // A receiver killed with SIGKILL cannot clean up: its temporary file is the only trace.
  for (const auto& name : dir_.entries())
    EXPECT_TRUE(name == "source.bin" || name == "received.bin" || name.rfind(".received.bin.mpxdp-", 0) == 0)
        << name;
}

// Either side without -F: the receiver refuses the other kind of stream and both fail saying why.
TEST_F(FileTransferTest, FileAndPatternStreamsDoNotMix) {
  auto bed = testbed::ScopedTestbed::create(threeLinks("m"));
  ASSERT_TRUE(bed) << bed.error().message();
  const fs::path source = dir_.path / "source.bin";
  ASSERT_TRUE(writeRandomFile(source, 5'000'000));

  auto plain = Subprocess::spawn(
      test::withTestBackend({MPXDP_EXECUTABLE, "recv", "--testbed", bed->info().name, "-1", "-i", "0"}));
  ASSERT_TRUE(plain) << plain.error().message();
  ASSERT_TRUE(plain->waitForStderr("mpxdp recv: ready", 20s)) << plain->err();
  auto fileSender = Subprocess::spawn(senderArgs(bed->info(), source));
  ASSERT_TRUE(fileSender) << fileSender.error().message();
  const auto sent = fileSender->wait(30s);
  const auto received = plain->wait(15s);
  ASSERT_TRUE(sent && received);
  EXPECT_NE(*sent, 0);
  EXPECT_NE(*received, 0);
  EXPECT_NE(fileSender->err().find("run mpxdp recv -F PATH"), std::string::npos) << fileSender->err();

  const fs::path target = dir_.path / "received.bin";
  auto fileReceiver = startReceiver(bed->info(), target);
  ASSERT_TRUE(fileReceiver);
  auto patternSender = Subprocess::spawn(test::withTestBackend(
      {MPXDP_EXECUTABLE, "send", "--testbed", bed->info().name, "--reliable", "-t", "1", "-i", "0"}));
  ASSERT_TRUE(patternSender) << patternSender.error().message();
  const auto patternSent = patternSender->wait(30s);
  const auto fileReceived = fileReceiver->wait(15s);
  ASSERT_TRUE(patternSent && fileReceived);
  EXPECT_NE(*patternSent, 0);
  EXPECT_NE(*fileReceived, 0);
  EXPECT_NE(fileReceiver->err().find("bad magic"), std::string::npos) << fileReceiver->err();
  EXPECT_EQ(dir_.entries(), std::vector<std::string>{"source.bin"});
}

}  // namespace
}  // namespace mpxdp
