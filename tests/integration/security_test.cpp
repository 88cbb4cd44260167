// Keys on the test bed (issue 11): `mpxdp genkey` and --key files, keyed
// transfers with both ciphers, a sender with the wrong key, and forged,
// replayed and truncated copies of real frames injected during a keyed
// transfer: nothing gets through, everything is counted, nothing is lost.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "injector.h"
#include "packet.h"
#include "privilege.h"
#include "subprocess.h"
#include "testbed.h"

namespace mpxdp {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testbed::Subprocess;

constexpr std::uint16_t kPort = 47000;

testbed::TestbedSpec threeLinks(const std::string& suffix) {
  return {"sc" + std::to_string(getpid()) + suffix, {300'000'000, 300'000'000, 300'000'000}, 1500};
}

std::uint64_t u64(const nlohmann::json& j, const char* key) { return j.at(key).get<std::uint64_t>(); }

// A private directory for key files, removed at the end.
struct KeyDir {
  KeyDir() {
    std::string pattern = (fs::temp_directory_path() / "mpxdp-keys-XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) path = pattern;
  }
  ~KeyDir() {
    std::error_code ignored;
    if (!path.empty()) fs::remove_all(path, ignored);
  }
  KeyDir(const KeyDir&) = delete;
  KeyDir& operator=(const KeyDir&) = delete;
  fs::path path;
};

struct Ran {
  std::optional<int> status;
  std::string out;
  std::string err;
};

Ran run(std::vector<std::string> args, std::chrono::seconds limit = 20s) {
  args.insert(args.begin(), MPXDP_EXECUTABLE);
  auto child = Subprocess::spawn(args);
  if (!child) return {std::nullopt, "", child.error().message()};
  const auto status = child->wait(limit);
  return {status, child->out(), child->err()};
}

// `mpxdp genkey -o FILE`: the file, mode 600.
std::string newKey(const KeyDir& dir, const std::string& name) {
  const std::string file = (dir.path / name).string();
  const Ran made = run({"genkey", "-o", file});
  EXPECT_EQ(made.status, std::optional<int>(0)) << made.err;
  return file;
}

std::optional<Subprocess> startReceiver(const std::string& bed, std::vector<std::string> extra) {
  std::vector<std::string> args = {MPXDP_EXECUTABLE, "recv", "--testbed", bed, "-1", "-J"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto receiver = Subprocess::spawn(args);
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

std::vector<std::string> sendArgs(const std::string& bed, const std::string& seconds, const std::string& rate,
                                  std::vector<std::string> extra) {
  std::vector<std::string> args = {"send", "--testbed", bed, "-J", "-t", seconds, "-b", rate};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

nlohmann::json finishReceiver(Subprocess& receiver) {
  const auto status = receiver.wait(30s);
  EXPECT_EQ(status, std::optional<int>(0)) << receiver.err();
  auto j = nlohmann::json::parse(receiver.out(), nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << receiver.out();
  return j;
}

// What the receiver delivered is what the sender sent, in order, nothing lost.
void expectLossless(const nlohmann::json& receiver, const nlohmann::json& sender) {
  EXPECT_EQ(u64(receiver, "lost_packets"), 0u) << receiver.dump();
  EXPECT_EQ(u64(receiver, "out_of_order_delivered"), 0u);
  EXPECT_EQ(u64(receiver, "corrupt_packets"), 0u);
  EXPECT_EQ(u64(receiver, "delivered_packets"), u64(sender, "sent_packets"));
  EXPECT_GT(u64(receiver, "delivered_packets"), 10'000u);
}

TEST(SecurityTest, KeyedTransfersAreAuthenticatedLoseNothingAndNameTheirCipher) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto bed = testbed::ScopedTestbed::create(threeLinks("k"));
  ASSERT_TRUE(bed) << bed.error().message();
  const std::string name = bed->info().name;
  KeyDir dir;
  const std::string key = newKey(dir, "link.key");
  for (const std::string cipher : {"", "chacha20-poly1305", "aes-256-gcm"}) {
    SCOPED_TRACE("cipher '" + cipher + "'");
    auto receiver = startReceiver(name, {"--key", key});
    ASSERT_TRUE(receiver);
    std::vector<std::string> extra = {"--key", key};
    if (!cipher.empty()) extra.insert(extra.end(), {"--cipher", cipher});
    const Ran sent = run(sendArgs(name, "2", "400M", extra));
    ASSERT_EQ(sent.status, std::optional<int>(0)) << sent.err;
    const auto s = nlohmann::json::parse(sent.out, nullptr, false);
    ASSERT_FALSE(s.is_discarded()) << sent.out;
    const auto r = finishReceiver(*receiver);
    EXPECT_EQ(s.at("authenticated"), true);
    EXPECT_EQ(r.at("authenticated"), true);
    if (!cipher.empty()) {
      EXPECT_EQ(s.at("cipher"), cipher);
    }
    EXPECT_EQ(r.at("cipher"), s.at("cipher"));
    expectLossless(r, s);
    EXPECT_EQ(u64(r, "auth_failed_packets"), 0u);
    EXPECT_EQ(u64(r, "replayed_packets"), 0u);
  }
  // Without --key the output says so.
  auto receiver = startReceiver(name, {});
  ASSERT_TRUE(receiver);
  const Ran plain = run({"send", "--testbed", name, "-t", "1", "-b", "100M"});
  ASSERT_EQ(plain.status, std::optional<int>(0)) << plain.err;
  EXPECT_NE(plain.out.find("not authenticated"), std::string::npos) << plain.out;
  EXPECT_EQ(finishReceiver(*receiver).at("authenticated"), false);
}

TEST(SecurityTest, KeyFileMisuseIsAUsageErrorNamingTheFile) {
  KeyDir dir;
  ASSERT_FALSE(dir.path.empty());
  const Ran printed = run({"genkey"});
  ASSERT_EQ(printed.status, std::optional<int>(0)) << printed.err;
  EXPECT_EQ(printed.out.size(), 45u) << printed.out;  // 44 base64 characters and a newline
  EXPECT_NE(run({"genkey"}).out, printed.out);
  const std::string key = newKey(dir, "k");
  EXPECT_EQ(fs::status(key).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  const Ran again = run({"genkey", "-o", key});
  EXPECT_EQ(again.status, std::optional<int>(1));
  EXPECT_NE(again.err.find("never overwritten"), std::string::npos) << again.err;

  const std::string loose = (dir.path / "loose.key").string();
  fs::copy_file(key, loose);
  fs::permissions(
      loose, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
  const std::string garbage = (dir.path / "garbage.key").string();
  {
    std::ofstream out(garbage);
    out << "not a key at all\n";
  }
  fs::permissions(garbage, fs::perms::owner_read | fs::perms::owner_write);
  const std::string link = "--link=lo=127.0.0.1";
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"send", link, "--key", loose}, "chmod 600"},
      {{"recv", "--link", "lo", "--key", loose}, "chmod 600"},
      {{"tun", "--name", "mpxq9", "--address", "10.9.0.1/24", link, "--key", loose}, "chmod 600"},
      {{"send", link, "--key", (dir.path / "missing.key").string()}, "missing.key"},
      {{"send", link, "--key", garbage}, "base64"},
      {{"send", link, "--key", dir.path.string()}, dir.path.string()},
      {{"send", link, "--key", key, "--cipher", "rot13"}, "--cipher"},
      {{"send", link, "--cipher", "aes-256-gcm"}, "--cipher needs --key"},
      {{"recv", "--link", "lo", "--key", key, "--key", key}, "twice"},
  };
  for (const Case& c : cases) {
    const Ran ran = run(c.args);
    std::string line;
    for (const auto& a : c.args) line += a + " ";
    EXPECT_EQ(ran.status, std::optional<int>(2)) << line << "\n" << ran.err;
    EXPECT_NE(ran.err.find(c.says), std::string::npos) << line << "\n" << ran.err;
  }
}

TEST(SecurityTest, AWrongKeyGetsNothingThroughIsToldNothingAndDisturbsNoOne) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto bed = testbed::ScopedTestbed::create(threeLinks("w"));
  ASSERT_TRUE(bed) << bed.error().message();
  const std::string name = bed->info().name;
  KeyDir dir;
  const std::string right = newKey(dir, "right.key");
  const std::string wrong = newKey(dir, "wrong.key");
  auto receiver = startReceiver(name, {"--key", right});
  ASSERT_TRUE(receiver);
  const auto before = std::chrono::steady_clock::now();
  const Ran refused = run(sendArgs(name, "2", "100M", {"--key", wrong}));
  const double tookS = std::chrono::duration<double>(std::chrono::steady_clock::now() - before).count();
  EXPECT_EQ(refused.status, std::optional<int>(1)) << refused.err;
  EXPECT_NE(refused.err.find("same key"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.err.find("closed the connection"), std::string::npos) << refused.err;
  EXPECT_LT(tookS, 10.0);
  // The receiver is still waiting, and serves the right key as if nothing happened.
  const Ran sent = run(sendArgs(name, "2", "300M", {"--key", right}));
  ASSERT_EQ(sent.status, std::optional<int>(0)) << sent.err;
  const auto s = nlohmann::json::parse(sent.out, nullptr, false);
  const auto r = finishReceiver(*receiver);
  expectLossless(r, s);
  EXPECT_GT(u64(r, "auth_failed_packets"), 0u) << "the wrong key's HELLOs are counted";
}

TEST(SecurityTest, ForgedReplayedAndTruncatedFramesDuringAKeyedTransferAreRejectedAndCostNothing) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto bed = testbed::ScopedTestbed::create(threeLinks("f"));
  ASSERT_TRUE(bed) << bed.error().message();
  const auto& info = bed->info();
  KeyDir dir;
  const std::string key = newKey(dir, "link.key");
  // The sender uses kernel sockets, so that its frames can be captured.
  for (const auto& link : info.links) test::txChecksumOff(info.senderNamespace, link.senderInterface);
  auto injector = test::Injector::open(info, kPort, 0, kPort + 1);
  ASSERT_TRUE(injector);
  auto capture = test::PacketCapture::open(info.senderNamespace, info.links[0].senderInterface, kPort);
  ASSERT_TRUE(capture);
  auto receiver = startReceiver(info.name, {"--key", key});
  ASSERT_TRUE(receiver);
  std::vector<std::string> args = sendArgs(info.name, "4", "300M", {"--key", key, "--backend", "udp"});
  args.insert(args.begin(), MPXDP_EXECUTABLE);
  auto sender = Subprocess::spawn(args);
  ASSERT_TRUE(sender) << sender.error().message();
  // Real frames of the connection on link 0, from its first second.
  const auto captured = capture->take(400, 3s);
  ASSERT_GE(captured.size(), 400u);
  std::uint64_t forged = 0;
  std::uint64_t replayed = 0;
  for (std::size_t i = 0; i < 40; ++i) {
    std::vector<std::uint8_t> packet = captured[i * 10];
    ASSERT_GT(packet.size(), wire::kPacketHeaderLen + 32);
    switch (i % 4) {
      case 0:  // replayed as it was
        ++replayed;
        break;
      case 1:  // one bit of the sealed frames flipped: its number was seen (a replay, refused unopened)
        packet[wire::kPacketHeaderLen + 3] ^= 0x01;
        ++replayed;
        break;
      case 2:  // truncated behind a valid header, under a number not seen yet (else: a replay)
        packet[14] ^= 0x55;
        packet.resize(wire::kPacketHeaderLen + 20);
        ++forged;
        break;
      default:  // its packet number far ahead (and so its nonce and associated data)
        packet[13] ^= 0x7f;
        ++forged;
        break;
    }
    injector->send(packet);
  }
  const auto sent = sender->wait(30s);
  ASSERT_EQ(sent, std::optional<int>(0)) << sender->err();
  const auto s = nlohmann::json::parse(sender->out(), nullptr, false);
  ASSERT_FALSE(s.is_discarded()) << sender->out();
  const auto r = finishReceiver(*receiver);
  expectLossless(r, s);
  EXPECT_EQ(u64(r, "replayed_packets"), replayed) << r.dump();
  EXPECT_EQ(u64(r, "auth_failed_packets"), forged) << r.dump();
  EXPECT_EQ(u64(r, "duplicate_packets"), 0u);
}

}  // namespace
}  // namespace mpxdp
