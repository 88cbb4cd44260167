// Key generation, parsing and key files (their permission check included).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "packet_protection.h"

namespace mpxdp::crypto {
namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(KeyTest, GenerateParseRoundTrip) {
  auto a = generateKeyBase64();
  auto b = generateKeyBase64();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 44u);
  EXPECT_EQ(a->back(), '=');
  EXPECT_NE(*a, *b);
  auto key = parseKey(*a);
  ASSERT_TRUE(key.ok()) << key.error().message();
  auto again = parseKey("  " + *a + "\n");  // surrounding whitespace is fine
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*key, *again);
}

TEST(KeyTest, KnownValue) {
  // 32 bytes 0x00..0x1f.
  auto key = parseKey("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
  ASSERT_TRUE(key.ok());
  for (std::size_t i = 0; i < kKeyLen; ++i) {
    EXPECT_EQ((*key)[i], i);
  }
}

TEST(KeyTest, RefusesWhatIsNotAKey) {
  const std::string good = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
  const char* bad[] = {
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",   // 31 bytes
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g",   // 33 bytes
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",    // no padding
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=",   // non-canonical last character
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd*h8=",   // not base64
      "AAECAwQFBgcICQoLDA0ODxAREh MUFRYXGBkaGxwdHh8=",  // a space inside
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH===",   // padding inside
      "not a key at all",
  };
  for (const char* text : bad) {
    auto key = parseKey(text);
    ASSERT_FALSE(key.ok()) << text;
    EXPECT_EQ(key.error().code(), EINVAL);
    EXPECT_TRUE(contains(key.error().message(), "key is not base64 of 32 bytes")) << key.error().message();
  }
  for (const char* empty : {"", "  \n"}) {
    auto key = parseKey(empty);
    ASSERT_FALSE(key.ok());
    EXPECT_TRUE(contains(key.error().message(), "key is empty")) << key.error().message();
  }
  EXPECT_TRUE(parseKey(good).ok());
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/mpxdp-keyfile-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content, mode_t mode) {
    std::string path = dir_ + "/" + name;
    {
      std::ofstream out(path, std::ios::binary);
      out << content;
    }
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  std::string dir_;
};

TEST_F(KeyFileTest, LoadsAPrivateFile) {
  auto text = generateKeyBase64();
  ASSERT_TRUE(text.ok());
  const std::string path = write("k", *text + "\n", 0600);
  auto key = loadKeyFile(path);
  ASSERT_TRUE(key.ok()) << key.error().message();
  EXPECT_EQ(*key, *parseKey(*text));
  // 0400 is fine too.
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);
  EXPECT_TRUE(loadKeyFile(path).ok());
}

TEST_F(KeyFileTest, RefusesAFileOthersCanRead) {
  auto text = generateKeyBase64();
  ASSERT_TRUE(text.ok());
  const std::string path = write("k", *text, 0644);
  auto key = loadKeyFile(path);
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.error().code(), EPERM);
  const std::string message = key.error().message();
  EXPECT_TRUE(contains(message, "key file " + path + " is readable by others (mode 0644)")) << message;
  EXPECT_TRUE(contains(message, "chmod 600 " + path)) << message;

  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  EXPECT_FALSE(loadKeyFile(path).ok());
  ASSERT_EQ(::chmod(path.c_str(), 0620), 0);
  auto writable = loadKeyFile(path);
  ASSERT_FALSE(writable.ok());
  EXPECT_TRUE(contains(writable.error().message(), "writable by others (mode 0620)"))
      << writable.error().message();
  ASSERT_EQ(::chmod(path.c_str(), 0602), 0);
  EXPECT_FALSE(loadKeyFile(path).ok());
}

TEST_F(KeyFileTest, ClearErrorsForBadContent) {
  struct Case {
    const char* name;
    std::string content;
    const char* expected;
  };
  const Case cases[] = {
      {"empty", "", "key is empty"},
      {"blank", "\n\n", "key is empty"},
      {"garbage", "hello world\n", "key is not base64 of 32 bytes"},
      {"short", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n", "key is not base64 of 32 bytes"},
      {"two", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
       "key is not base64 of 32 bytes"},
      {"huge", std::string(10000, 'A'), "too large"},
  };
  for (const Case& c : cases) {
    const std::string path = write(c.name, c.content, 0600);
    auto key = loadKeyFile(path);
    ASSERT_FALSE(key.ok()) << c.name;
    const std::string message = key.error().message();
    EXPECT_TRUE(contains(message, c.expected)) << c.name << ": " << message;
    EXPECT_TRUE(contains(message, path)) << c.name << ": " << message;
  }
}

TEST_F(KeyFileTest, RefusesADirectoryAndAMissingFile) {
  const std::string sub = dir_ + "/d";
  ASSERT_EQ(::mkdir(sub.c_str(), 0700), 0);
  auto key = loadKeyFile(sub);
  ASSERT_FALSE(key.ok());
  EXPECT_TRUE(contains(key.error().message(), "not a regular file")) << key.error().message();

  auto missing = loadKeyFile(dir_ + "/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_TRUE(contains(missing.error().message(), dir_ + "/nope"));
}

TEST_F(KeyFileTest, RefusesAFifoWithoutBlocking) {
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto key = loadKeyFile(fifo);
  ASSERT_FALSE(key.ok());
  EXPECT_TRUE(contains(key.error().message(), "not a regular file")) << key.error().message();
}

}  // namespace
}  // namespace mpxdp::crypto
