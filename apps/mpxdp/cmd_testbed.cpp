// mpxdp testbed up|down|show|set: the local multi-link test bed.
#include <fmt/core.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "rate.h"
#include "testbed.h"

namespace mpxdp::cli {

namespace {

struct TestbedOptions {
  std::string name;
  // Signed, so that "-1" reaches the range check instead of wrapping around; 0 means not given.
  int links = 0;
  std::string rate;
  std::vector<std::string> rates;
  int mtu = 1500;
  int queues = 1;
  std::vector<std::string> delays;
  std::vector<std::string> losses;
  bool json = false;
  // testbed set
  long long link = -1;
  std::string setRate;
  std::string setDelay;
  std::string setLoss;
  bool setDown = false;
  bool setUp = false;
};

TestbedOptions options;

int usageError(std::string_view what, const Error& error) {
  fmt::print(stderr, "mpxdp {}: {}\n", what, error.context());
  return kExitUsageError;
}

void printInfo(const testbed::TestbedInfo& info, bool json) {
  if (json) {
    fmt::print("{}\n", testbed::toJson(info).dump(2));
  } else {
    fmt::print("{}", testbed::toText(info));
  }
}

// Turns --links/--rate/--rates into per-link rates; usage errors are EINVAL.
Result<std::vector<std::uint64_t>> linkRates() {
  std::vector<std::uint64_t> rates;
  if (!options.rates.empty()) {
    for (const auto& text : options.rates) {
      auto rate = parseRate(text);
      if (!rate) return rate.error();
      rates.push_back(*rate);
    }
    if (options.links != 0 && static_cast<std::size_t>(options.links) != rates.size()) {
      return Error(EINVAL, fmt::format("--links {} but --rates lists {} rates", options.links, rates.size()));
    }
    return rates;
  }
  if (options.links == 0) return Error(EINVAL, "--links N (1..16) is required unless --rates is given");
  std::uint64_t rate = 0;
  if (!options.rate.empty()) {
    auto parsed = parseRate(options.rate);
    if (!parsed) return parsed.error();
    rate = *parsed;
  }
  rates.assign(static_cast<std::size_t>(options.links), rate);
  return rates;
}

// --delays/--loss: like --rates, one value per link.
template <typename T>
Result<std::vector<T>> perLink(const std::vector<std::string>& texts, std::string_view option,
                               std::size_t links, Result<T> (*parse)(std::string_view)) {
  std::vector<T> values;
  if (texts.empty()) return values;
  if (texts.size() != links) {
    return Error(EINVAL, fmt::format("{} lists {} value(s) for {} link(s)", option, texts.size(), links));
  }
  for (const auto& text : texts) {
    auto value = parse(text);
    if (!value) return value.error();
    values.push_back(*value);
  }
  return values;
}

int runUp() {
  auto rates = linkRates();
  if (!rates) return usageError("testbed up", rates.error());
  auto delays = perLink<std::uint64_t>(options.delays, "--delays", rates->size(), testbed::parseDelay);
  if (!delays) return usageError("testbed up", delays.error());
  auto losses = perLink<double>(options.losses, "--loss", rates->size(), testbed::parseLossPercent);
  if (!losses) return usageError("testbed up", losses.error());
  testbed::TestbedSpec spec{options.name,
                            std::move(*rates),
                            static_cast<std::uint32_t>(options.mtu),
                            static_cast<std::uint32_t>(options.queues),
                            std::move(*delays),
                            std::move(*losses)};
  if (auto valid = testbed::validateSpec(spec); !valid) return usageError("testbed up", valid.error());
  auto info = testbed::up(spec);
  if (!info) return reportError("testbed up", info.error());
  printInfo(*info, options.json);
  return kExitOk;
}

int runDown() {
  if (auto valid = testbed::validateName(options.name); !valid)
    return usageError("testbed down", valid.error());
  if (auto done = testbed::down(options.name); !done) return reportError("testbed down", done.error());
  return kExitOk;
}

int runShow() {
  if (auto valid = testbed::validateName(options.name); !valid)
    return usageError("testbed show", valid.error());
  auto info = testbed::show(options.name);
  if (!info) return reportError("testbed show", info.error());
  printInfo(*info, options.json);
  return kExitOk;
}

int runSet() {
  if (auto valid = testbed::validateName(options.name); !valid)
    return usageError("testbed set", valid.error());
  if (options.link < 0) return usageError("testbed set", Error(EINVAL, "--link must be 0 or more"));
  testbed::LinkChange change;
  if (!options.setRate.empty()) {
    if (options.setRate == "0") {
      change.rateBps = 0;
    } else {
      auto rate = parseRate(options.setRate);
      if (!rate) return usageError("testbed set", rate.error());
      change.rateBps = *rate;
    }
  }
  if (!options.setDelay.empty()) {
    auto delay = testbed::parseDelay(options.setDelay);
    if (!delay) return usageError("testbed set", delay.error());
    change.delayNs = *delay;
  }
  if (!options.setLoss.empty()) {
    auto loss = testbed::parseLossPercent(options.setLoss);
    if (!loss) return usageError("testbed set", loss.error());
    change.lossPercent = *loss;
  }
  if (options.setDown) change.down = true;
  if (options.setUp) change.down = false;
  if (!change.rateBps && !change.delayNs && !change.lossPercent && !change.down) {
    return usageError("testbed set",
                      Error(EINVAL, "nothing to set: give --rate, --delay, --loss, --down or --up"));
  }
  if (auto done = testbed::setLink(options.name, static_cast<std::size_t>(options.link), change); !done) {
    if (done.error().code() == EINVAL) return usageError("testbed set", done.error());
    return reportError("testbed set", done.error());
  }
  return kExitOk;
}

void addName(CLI::App* app) {
  app->add_option("--name", options.name, "test bed name: a-z, 0-9 and '-', at most 24 characters")
      ->required();
}

void addJson(CLI::App* app) { app->add_flag("-J,--json", options.json, "print JSON instead of a table"); }

}  // namespace

void declareTestbed(CLI::App* app) {
  app->require_subcommand(1);

  CLI::App* up = app->add_subcommand(
      "up", "Create namespaces mpxdp-NAME-{tx,rx,link} joined by N veth links 198.18.<i+1>.1 <-> .2");
  addName(up);
  up->add_option("--links", options.links, "number of links, 1..16")
      ->check(CLI::Range(1, static_cast<int>(testbed::kMaxLinks)));
  CLI::Option* rate = up->add_option("--rate", options.rate,
                                     "shape every link to this rate in bit/s, e.g. 300M, 2.5G, 100k (tbf)");
  CLI::Option* rates =
      up->add_option("--rates", options.rates, "per-link rates, comma separated, e.g. 100M,300M,1G")
          ->delimiter(',');
  rate->excludes(rates);
  up->add_option("--mtu", options.mtu, "MTU of every test bed interface")
      ->check(CLI::Range(static_cast<int>(testbed::kMinMtu), static_cast<int>(testbed::kMaxMtu)))
      ->capture_default_str();
  up->add_option("--queues", options.queues,
                 "TX and RX queues of every veth, 1..16; with several, flows spread over them (like RSS)")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  up->add_option(
        "--delays", options.delays,
        "per-link one-way delay, applied in each direction, comma separated, e.g. 5ms,40ms (0: none)")
      ->delimiter(',');
  up->add_option("--loss", options.losses,
                 "per-link random loss in each direction, comma separated, e.g. 0,1% (0.5% ok)")
      ->delimiter(',');
  addJson(up);

  CLI::App* set =
      app->add_subcommand("set", "Change one link while traffic flows: rate, delay, loss, down/up");
  addName(set);
  set->add_option("--link", options.link, "link index, from 0 as in 'testbed show'")->required();
  set->add_option("--rate", options.setRate, "tbf rate both ways, e.g. 300M; 0: unshaped");
  set->add_option("--delay", options.setDelay, "one-way delay in each direction, e.g. 5ms, 250us; 0: none");
  set->add_option("--loss", options.setLoss, "random loss in each direction, e.g. 1%, 0.5%; 0: none");
  CLI::Option* downFlag =
      set->add_flag("--down", options.setDown, "cut the link in the middle: drop everything both ways");
  CLI::Option* upFlag = set->add_flag("--up", options.setUp, "restore a link cut with --down");
  downFlag->excludes(upFlag);

  CLI::App* down = app->add_subcommand("down", "Remove the test bed (succeeds when there is none)");
  addName(down);

  CLI::App* show = app->add_subcommand("show", "Print the live test bed read back from the kernel");
  addName(show);
  addJson(show);
}

int runTestbed(CLI::App* app) {
  if (app->got_subcommand("up")) return runUp();
  if (app->got_subcommand("down")) return runDown();
  if (app->got_subcommand("show")) return runShow();
  if (app->got_subcommand("set")) return runSet();
  fmt::print(stderr, "mpxdp testbed: expected up, down, show or set\n");
  return kExitUsageError;
}

}  // namespace mpxdp::cli
