// The -F file stream without a network: header and trailer codecs, the
// parser on every malformed stream, SHA-256, the temporary file rule, and a
// file streamed through FileSource into FileSink on disk.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "file_io.h"
#include "file_stream.h"

namespace mpxdp::cli {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

Bytes headerBytes(const FileHeader& header, std::size_t room = 1500) {
  Bytes out(room);
  out.resize(encodeFileHeader(header, out));
  return out;
}

Bytes trailerBytes(const FileTrailer& trailer) {
  Bytes out(kFileTrailerBytes);
  out.resize(encodeFileTrailer(trailer, out));
  return out;
}

void expectBad(const Error& error, const std::string& words) {
  EXPECT_EQ(error.code(), EBADMSG);
  EXPECT_NE(error.context().find(words), std::string::npos) << error.context();
}

TEST(FileStreamCodecTest, HeaderRoundTrips) {
  FileHeader header;
  header.size = 200'000'123;
  header.chunkBytes = 1432;
  header.name = "data.bin";
  const Bytes bytes = headerBytes(header);
  EXPECT_EQ(bytes.size(), kFileHeaderFixedBytes + 8);
  EXPECT_EQ(0, std::memcmp(bytes.data(), "MPXFILEH", 8));
  EXPECT_EQ(0, std::memcmp(bytes.data() + 12, "sha256\0\0", 8));  // the algorithm by name
  auto decoded = decodeFileHeader(bytes);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->version, kFileStreamVersion);
  EXPECT_EQ(decoded->size, header.size);
  EXPECT_EQ(decoded->chunkBytes, header.chunkBytes);
  EXPECT_EQ(decoded->name, header.name);
}

TEST(FileStreamCodecTest, NameIsCutToFitWithoutSplittingACharacter) {
  FileHeader header;
  header.size = 1;
  header.chunkBytes = kMinFilePayload;
  header.name = std::string(28, 'a') + "\xc3\xa9\xc3\xa9";  // 28 + two 2-byte characters
  const Bytes bytes = headerBytes(header, kMinFilePayload);
  ASSERT_LE(bytes.size(), kMinFilePayload);
  auto decoded = decodeFileHeader(bytes);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->name, std::string(28, 'a') + "\xc3\xa9");
  Bytes tooSmall(kFileHeaderFixedBytes - 1);
  EXPECT_EQ(encodeFileHeader(header, tooSmall), 0u);
  // The fixed part alone still encodes (empty name).
  Bytes fixed(kFileHeaderFixedBytes);
  EXPECT_EQ(encodeFileHeader(header, fixed), kFileHeaderFixedBytes);
}

TEST(FileStreamCodecTest, TrailerRoundTrips) {
  FileTrailer trailer;
  trailer.size = 42;
  for (std::size_t i = 0; i < trailer.digest.size(); ++i)
    trailer.digest[i] = static_cast<std::uint8_t>(i * 7);
  const Bytes bytes = trailerBytes(trailer);
  ASSERT_EQ(bytes.size(), kFileTrailerBytes);
  auto decoded = decodeFileTrailer(bytes);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->size, 42u);
  EXPECT_EQ(decoded->digest, trailer.digest);
  EXPECT_LE(kFileTrailerBytes, kMinFilePayload);
}

TEST(FileStreamCodecTest, MalformedHeadersAndTrailersAreNamed) {
  FileHeader header;
  header.size = 10;
  header.chunkBytes = 100;
  header.name = "x";
  const Bytes good = headerBytes(header);

  expectBad(decodeFileHeader({}).error(), "bad magic");
  Bytes magic = good;
  magic[0] = 'X';
  expectBad(decodeFileHeader(magic).error(), "bad magic");
  expectBad(decodeFileHeader(std::span(good).first(20)).error(), "at least 34");
  Bytes version = good;
  version[9] = 2;
  expectBad(decodeFileHeader(version).error(), "version 2");
  Bytes digest = good;
  std::memcpy(digest.data() + 12, "md5\0\0\0\0\0", 8);
  expectBad(decodeFileHeader(digest).error(), "unknown digest 'md5'");
  Bytes zeroChunk = good;
  std::memset(zeroChunk.data() + 28, 0, 4);
  expectBad(decodeFileHeader(zeroChunk).error(), "payloads of 0 bytes");
  Bytes longName = good;
  longName[33] = 9;
  expectBad(decodeFileHeader(longName).error(), "sizes disagree");
  Bytes extra = good;
  extra.push_back(0);
  expectBad(decodeFileHeader(extra).error(), "sizes disagree");
  header.name = "a/b";
  expectBad(decodeFileHeader(headerBytes(header)).error(), "'/' or NUL");
  header.name = std::string("a\0b", 3);
  expectBad(decodeFileHeader(headerBytes(header)).error(), "'/' or NUL");

  const Bytes trailer = trailerBytes({});
  Bytes badMagic = trailer;
  badMagic[7] = 'H';
  expectBad(decodeFileTrailer(badMagic).error(), "bad magic");
  expectBad(decodeFileTrailer(std::span(trailer).first(40)).error(), "trailer of 40 bytes");
  Bytes badDigest = trailer;
  badDigest[8] = 'S';
  expectBad(decodeFileTrailer(badDigest).error(), "unknown digest");
  Bytes badLength = trailer;
  badLength[25] = 20;
  expectBad(decodeFileTrailer(badLength).error(), "digest of 20 bytes");
}

TEST(FileStreamCodecTest, SizesAndNames) {
  EXPECT_EQ(fileDataPayloads(0, 1000), 0u);
  EXPECT_EQ(fileDataPayloads(1000, 1000), 1u);
  EXPECT_EQ(fileDataPayloads(1001, 1000), 2u);
  FileHeader header;
  header.size = 5000;
  header.chunkBytes = 1000;
  header.name = "abc";
  EXPECT_EQ(fileStreamBytes(header), kFileHeaderFixedBytes + 3 + 5000 + kFileTrailerBytes);
  EXPECT_EQ(fileBaseName("/a/b/c.bin"), "c.bin");
  EXPECT_EQ(fileBaseName("c.bin"), "c.bin");
  EXPECT_EQ(fileBaseName("dir/"), "dir");
  EXPECT_EQ(fileBaseName("/"), "");
  EXPECT_EQ(printableName("caf\xc3\xa9 \xe2\x82\xac.bin"), "caf\xc3\xa9 \xe2\x82\xac.bin");
  EXPECT_EQ(printableName("caf\xe9.bin"), "caf?.bin");   // Latin-1
  EXPECT_EQ(printableName("a\x1b[2Jb\x7f"), "a?[2Jb?");  // terminal escapes
  EXPECT_EQ(printableName("\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80"),
            "?????????");                      // overlong, surrogate, > U+10FFFF
  EXPECT_EQ(printableName("\xe2\x82"), "??");  // cut short
  const std::uint8_t bytes[] = {0x00, 0x0f, 0xab, 0xff};
  EXPECT_EQ(toHex(bytes), "000fabff");
}

// A whole stream for `content` in payloads of chunk bytes, as FileSource would send it.
std::vector<Bytes> streamOf(const Bytes& content, std::uint32_t chunk, const FileDigest& digest) {
  std::vector<Bytes> payloads;
  FileHeader header;
  header.size = content.size();
  header.chunkBytes = chunk;
  header.name = "f";
  payloads.push_back(headerBytes(header, chunk));
  for (std::size_t at = 0; at < content.size(); at += chunk)
    payloads.emplace_back(content.begin() + at, content.begin() + std::min(content.size(), at + chunk));
  FileTrailer trailer;
  trailer.size = content.size();
  trailer.digest = digest;
  payloads.push_back(trailerBytes(trailer));
  return payloads;
}

Result<void> parseAll(const std::vector<Bytes>& payloads, FileStreamParser& parser) {
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    if (auto part = parser.feed(i, payloads[i]); !part) return part.error();
  }
  return parser.finish();
}

TEST(FileStreamParserTest, AcceptsWellFormedStreams) {
  for (std::size_t size : {0u, 1u, 99u, 100u, 101u, 1000u}) {
    Bytes content(size, 0x5a);
    FileStreamParser parser;
    auto parsed = parseAll(streamOf(content, 100, {}), parser);
    EXPECT_TRUE(parsed) << size << ": " << parsed.error().message();
    EXPECT_TRUE(parser.complete());
    EXPECT_EQ(parser.dataBytes(), size);
  }
}

TEST(FileStreamParserTest, EveryMalformedStreamIsAnError) {
  const Bytes content(350, 1);
  const auto good = streamOf(content, 100, {});  // header, 100, 100, 100, 50, trailer
  auto failsWith = [](const std::vector<Bytes>& payloads, const std::string& words) {
    FileStreamParser parser;
    auto parsed = parseAll(payloads, parser);
    ASSERT_FALSE(parsed) << words;
    expectBad(parsed.error(), words);
    EXPECT_FALSE(parser.complete());
  };
  // Short: no trailer, missing data, nothing at all.
  failsWith({good.begin(), good.end() - 1}, "without the trailer");
  failsWith({good.begin(), good.begin() + 3}, "ended after 200 of 350 bytes");
  failsWith({}, "before the header");
  // The trailer early (a data payload dropped and the numbering hidden).
  auto early = good;
  early.erase(early.begin() + 4);
  failsWith(early, "trailer came after 300 of 350 bytes");
  // Long: anything after the trailer.
  auto longer = good;
  longer.push_back(Bytes(10, 0));
  failsWith(longer, "10 more bytes after the trailer");
  // Sizes that disagree: a data payload of another size, a trailer with another size.
  auto resized = good;
  resized[2].push_back(0);
  failsWith(resized, "data payload of 101 bytes at offset 100, 100 expected");
  auto lastLong = good;
  lastLong[4].push_back(0);
  failsWith(lastLong, "51 bytes at offset 300, 50 expected");
  auto trailerSize = good;
  trailerSize.back() = trailerBytes({.size = 351, .digest = {}});
  failsWith(trailerSize, "the trailer says 351 bytes, the header 350");
  // Not a file stream; a broken trailer.
  auto pattern = good;
  pattern[0] = Bytes(100, 7);
  failsWith(pattern, "bad magic");
  auto brokenTrailer = good;
  brokenTrailer.back()[0] = 'Z';
  failsWith(brokenTrailer, "not a trailer");
}

TEST(FileStreamParserTest, AGapOrARepeatInTheSequenceIsAnError) {
  const auto payloads = streamOf(Bytes(300, 1), 100, {});
  FileStreamParser gap;
  ASSERT_TRUE(gap.feed(0, payloads[0]));
  ASSERT_TRUE(gap.feed(1, payloads[1]));
  auto skipped = gap.feed(3, payloads[3]);
  ASSERT_FALSE(skipped);
  expectBad(skipped.error(), "payloads 2..2 are missing");
  // Failed stays failed.
  EXPECT_FALSE(gap.feed(2, payloads[2]));
  EXPECT_FALSE(gap.finish());

  FileStreamParser repeat;
  ASSERT_TRUE(repeat.feed(0, payloads[0]));
  ASSERT_TRUE(repeat.feed(1, payloads[1]));
  auto again = repeat.feed(1, payloads[1]);
  ASSERT_FALSE(again);
  expectBad(again.error(), "arrived again");
}

TEST(Sha256Test, KnownDigests) {
  Sha256 empty;
  EXPECT_EQ(toHex(empty.final()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 abc;
  const std::uint8_t a[] = {'a'};
  const std::uint8_t bc[] = {'b', 'c'};
  abc.update(a);
  abc.update(bc);
  EXPECT_EQ(toHex(abc.final()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// A scratch directory, removed with everything in it.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    std::string tmpl = (fs::temp_directory_path() / "mpxdp-file-test-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path)) names.push_back(entry.path().filename().string());
    return names;
  }
};

void writeFile(const fs::path& path, const Bytes& content) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(content.data()), static_cast<std::streamsize>(content.size()));
}

Bytes readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

Bytes randomBytes(std::size_t size, unsigned seed) {
  std::mt19937_64 rng(seed);
  Bytes bytes(size);
  for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
  return bytes;
}

TEST(TempFileTest, RemovedUnlessCommitted) {
  ScratchDir dir;
  const std::string target = (dir.path / "out.bin").string();
  {
    auto temp = TempFile::create(target);
    ASSERT_TRUE(temp) << temp.error().message();
    EXPECT_EQ(fs::path((*temp)->path()).filename().string().rfind(".out.bin.mpxdp-", 0), 0u)
        << (*temp)->path();
    EXPECT_TRUE(fs::exists((*temp)->path()));
  }
  EXPECT_TRUE(dir.entries().empty());

  auto temp = TempFile::create(target);
  ASSERT_TRUE(temp);
  ASSERT_EQ(::write((*temp)->fd(), "hi", 2), 2);
  ASSERT_TRUE((*temp)->commit());
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.bin"});
  EXPECT_EQ(readFile(target), (Bytes{'h', 'i'}));
  struct stat st {};
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  const mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask);
  temp->reset();  // committed: the destructor leaves the file alone
  EXPECT_TRUE(fs::exists(target));
}

TEST(FileCheckTest, SourceAndDestinationMisuse) {
  ScratchDir dir;
  EXPECT_EQ(openSourceFile((dir.path / "none").string()).error().code(), ENOENT);
  EXPECT_EQ(openSourceFile(dir.path.string()).error().code(), EISDIR);
  EXPECT_EQ(openSourceFile("/dev/null").error().code(), EINVAL);
  writeFile(dir.path / "f", Bytes(5, 0));
  auto source = openSourceFile((dir.path / "f").string());
  ASSERT_TRUE(source);
  EXPECT_EQ(source->size, 5u);
  ::close(source->fd);

  EXPECT_TRUE(checkDestination((dir.path / "new").string()));
  EXPECT_TRUE(checkDestination((dir.path / "f").string()));  // replaced only when verified
  EXPECT_EQ(checkDestination(dir.path.string()).error().code(), EISDIR);
  EXPECT_EQ(checkDestination(dir.path.string() + "/").error().code(), EISDIR);
  EXPECT_EQ(checkDestination((dir.path / "missing" / "x").string()).error().code(), ENOENT);
  EXPECT_EQ(checkDestination((dir.path / "f" / "x").string()).error().code(), ENOTDIR);
  EXPECT_EQ(checkDestination("/dev/null").error().code(), EINVAL);
}

// FileSource's payloads straight into FileSink: the file arrives byte for byte.
Result<void> streamThrough(FileSource& source, FileSink& sink, std::uint32_t chunk, std::size_t* payloads) {
  Bytes slot(chunk);
  std::uint64_t seq = 0;
  for (;;) {
    auto n = source.fill(slot.data(), chunk);
    if (!n) return n.error();
    if (*n == 0) break;
    if (auto consumed = sink.consume(seq++, {slot.data(), *n}); !consumed) return consumed.error();
  }
  *payloads = seq;
  return sink.commit();
}

TEST(FileSourceSinkTest, SourceToSinkOnDisk) {
  ScratchDir dir;
  // Sizes around the read buffer (a multiple of the payload size) and the hash step.
  const std::uint32_t chunk = 1432;
  const std::size_t bufferBytes = (kFileIoBufferBytes / chunk) * chunk;
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{chunk}, std::size_t{3 * chunk + 3},
                           bufferBytes, bufferBytes + 1, 2 * kFileIoBufferBytes + 12345}) {
    const Bytes content = randomBytes(size, static_cast<unsigned>(size));
    writeFile(dir.path / "in.bin", content);
    auto file = openSourceFile((dir.path / "in.bin").string());
    ASSERT_TRUE(file);
    FileSource source((dir.path / "in.bin").string(), *file);
    source.start(chunk);
    auto sink = FileSink::create((dir.path / "out.bin").string());
    ASSERT_TRUE(sink) << sink.error().message();
    std::size_t payloads = 0;
    auto done = streamThrough(source, **sink, chunk, &payloads);
    ASSERT_TRUE(done) << size << ": " << done.error().message();
    EXPECT_EQ(payloads, fileDataPayloads(size, chunk) + 2);
    EXPECT_TRUE(source.complete());
    EXPECT_EQ(readFile(dir.path / "out.bin"), content) << size;
    const FileSummary sent = source.summary();
    const FileSummary received = (*sink)->summary();
    EXPECT_EQ(sent.sha256.size(), 64u);
    EXPECT_EQ(sent.sha256, received.sha256);
    EXPECT_EQ(received.peerSha256, sent.sha256);
    EXPECT_EQ(received.verified, true);
    EXPECT_EQ(received.bytes, size);
    EXPECT_EQ(received.name, "in.bin");
    EXPECT_EQ(sent.streamBytes, received.streamBytes);
    EXPECT_EQ(sent.streamBytes, size + kFileHeaderFixedBytes + 6 + kFileTrailerBytes);
    sink->reset();
    std::vector<std::string> entries = dir.entries();
    std::sort(entries.begin(), entries.end());
    EXPECT_EQ(entries, (std::vector<std::string>{"in.bin", "out.bin"}));
    fs::remove(dir.path / "out.bin");
  }
}

TEST(FileSourceSinkTest, DigestMismatchOrAShortStreamLeavesNoFileAndKeepsAnOldOne) {
  ScratchDir dir;
  const Bytes content = randomBytes(100'000, 1);
  const fs::path target = dir.path / "out.bin";
  writeFile(target, Bytes{'o', 'l', 'd'});

  // The digest in the trailer is not the content's.
  FileDigest wrong{};
  wrong[0] = 1;
  const auto payloads = streamOf(content, 1000, wrong);
  {
    auto sink = FileSink::create(target.string());
    ASSERT_TRUE(sink);
    Result<void> last;
    for (std::size_t i = 0; i < payloads.size() && last; ++i) last = (*sink)->consume(i, payloads[i]);
    ASSERT_FALSE(last);
    expectBad(last.error(), "sha256 mismatch: the sender's 0100");
    EXPECT_FALSE((*sink)->commit());
    EXPECT_EQ((*sink)->summary().verified, false);
  }
  EXPECT_EQ(readFile(target), (Bytes{'o', 'l', 'd'}));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.bin"});

  // The stream stops half way (the peer died): commit refuses, the temporary file goes.
  {
    auto sink = FileSink::create(target.string());
    ASSERT_TRUE(sink);
    for (std::size_t i = 0; i < payloads.size() / 2; ++i) ASSERT_TRUE((*sink)->consume(i, payloads[i]));
    EXPECT_TRUE(fs::exists((*sink)->tempPath()));
    auto committed = (*sink)->commit();
    ASSERT_FALSE(committed);
    expectBad(committed.error(), "short stream");
    EXPECT_FALSE(fs::exists((*sink)->tempPath()));
  }
  EXPECT_EQ(readFile(target), (Bytes{'o', 'l', 'd'}));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.bin"});
}

}  // namespace
}  // namespace mpxdp::cli
