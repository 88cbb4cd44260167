// loopback_udp: two mpxdp endpoints in one process, joined by one link over
// the loopback interface with the kernel UDP backend (no root needed). The
// client connects, sends `count` payloads and closes its stream; the server
// accepts, receives them in order and reports back. Uses <mpxdp/mpxdp.h> only.
//
//   loopback_udp [count] [server-port] [client-port]
#include <mpxdp/mpxdp.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace {

constexpr std::uint64_t kTimeoutNs = 10'000'000'000;  // the whole exchange
constexpr std::uint64_t kMaxSleepNs = 200'000;

// One path over `lo`: this side on 127.0.0.1:port, the peer on 127.0.0.1:peerPort
// (a server learns its peer from the first packet).
mpxdp::Result<std::unique_ptr<mpxdp::Endpoint>> openLoopback(bool server, std::uint16_t port,
                                                             std::uint16_t peerPort) {
  const auto loopback = mpxdp::IpAddress::parse("127.0.0.1");
  mpxdp::LinkSpec link;
  link.interface = "lo";
  link.localIp = loopback;
  if (!server) link.peerIp = loopback;
  mpxdp::LinkOptions options;
  options.backend = mpxdp::Backend::kUdp;
  options.port = port;
  options.peerPort = peerPort;
  options.frameCount = 256;
  mpxdp::EndpointConfig config;
  config.acceptIncoming = server;
  return mpxdp::openEndpoint(config, {link}, options);
}

int fail(const char* what, const mpxdp::Error& error) {
  std::fprintf(stderr, "loopback_udp: %s: %s\n", what, error.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const int count = argc > 1 ? std::atoi(argv[1]) : 10;
  const auto serverPort = static_cast<std::uint16_t>(argc > 2 ? std::atoi(argv[2]) : 47100);
  const auto clientPort = static_cast<std::uint16_t>(argc > 3 ? std::atoi(argv[3]) : 47101);
  if (count <= 0 || serverPort == 0 || clientPort == 0 || serverPort == clientPort) {
    std::fprintf(stderr,
                 "usage: loopback_udp [count > 0] [server-port] [client-port] (two different ports)\n");
    return 2;
  }

  auto serverEndpoint = openLoopback(true, serverPort, clientPort);
  if (!serverEndpoint) return fail("server endpoint", serverEndpoint.error());
  auto clientEndpoint = openLoopback(false, clientPort, serverPort);
  if (!clientEndpoint) return fail("client endpoint", clientEndpoint.error());
  mpxdp::Endpoint& serverSide = **serverEndpoint;
  mpxdp::Endpoint& clientSide = **clientEndpoint;

  auto connected = clientSide.connect(mpxdp::ConnectOptions{});
  if (!connected) return fail("connect", connected.error());
  mpxdp::Connection& client = **connected;
  mpxdp::Connection* server = nullptr;

  mpxdp::MonotonicClock clock;
  const std::uint64_t deadline = clock.nowNs() + kTimeoutNs;
  int sent = 0;
  std::vector<std::string> received;
  std::vector<std::uint8_t> buffer(65536);
  while (!(server != nullptr && server->state().receiveFinished && client.done())) {
    if (clock.nowNs() > deadline) {
      std::fprintf(stderr, "loopback_udp: timed out (sent %d, received %zu)\n", sent, received.size());
      return 1;
    }
    if (auto polled = serverSide.poll(); !polled) return fail("server poll", polled.error());
    if (auto polled = clientSide.poll(); !polled) return fail("client poll", polled.error());
    if (client.error()) return fail("client", *client.error());
    if (server == nullptr) server = serverSide.accept();

    // Client: send the payloads once the handshake is done, then close the stream.
    while (client.established() && sent < count) {
      const std::string payload = "payload " + std::to_string(sent);
      auto accepted =
          client.send(std::span(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()));
      if (!accepted) return fail("send", accepted.error());
      if (!*accepted) break;  // paced or no buffer now: try again after the next poll
      ++sent;
    }
    if (sent == count && !client.state().sendFinished) {
      if (auto flushed = client.flush(); !flushed) return fail("flush", flushed.error());
      if (auto finished = client.finish(); !finished) return fail("finish", finished.error());
    }

    // Server: take what arrived, in order.
    if (server != nullptr) {
      if (server->error()) return fail("server", *server->error());
      for (;;) {
        auto length = server->recv(buffer);
        if (!length) return fail("recv", length.error());
        if (*length == 0) break;
        received.emplace_back(reinterpret_cast<const char*>(buffer.data()), *length);
        std::printf("server: received \"%s\"\n", received.back().c_str());
      }
    }
    const std::uint64_t now = clock.nowNs();
    clock.sleepUntil(std::min({serverSide.nextDeadlineNs(), clientSide.nextDeadlineNs(), now + kMaxSleepNs}));
  }

  bool inOrder = static_cast<int>(received.size()) == count;
  for (std::size_t i = 0; inOrder && i < received.size(); ++i) {
    inOrder = received[i] == "payload " + std::to_string(i);
  }
  const auto report = client.peerReport();
  std::printf("client: sent %d payloads; the server reports %llu packets, %llu bytes, %llu lost\n", sent,
              report ? static_cast<unsigned long long>(report->packets) : 0ULL,
              report ? static_cast<unsigned long long>(report->bytes) : 0ULL,
              report ? static_cast<unsigned long long>(report->lost) : 0ULL);
  std::printf("server: received %zu payloads %s\n", received.size(), inOrder ? "in order" : "NOT in order");
  if (!inOrder || !report || report->packets != static_cast<std::uint64_t>(count)) return 1;
  return 0;
}
