#include "steering.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "mpxdp_steer.skel.h"

namespace mpxdp::bpf {
namespace {

// libbpf has one process-wide print callback and it belongs to the
// application. While libbpf works for us we collect its output, then put the
// application's callback back and hand the output to it, unless the call
// failed for lack of privilege: the error value says that in one line.
struct CapturedLine {
  libbpf_print_level level;
  std::string text;
};

std::mutex captureMutex;                             // one capture at a time
std::mutex linesMutex;                               // other threads may print while we capture
std::vector<CapturedLine>* capturedLines = nullptr;  // guarded by linesMutex

int captureLibbpfOutput(enum libbpf_print_level level, const char* format, va_list args) {
  va_list sizing;
  va_copy(sizing, args);
  const int length = std::vsnprintf(nullptr, 0, format, sizing);
  va_end(sizing);
  if (length < 0) return length;
  std::string text(static_cast<std::size_t>(length) + 1, '\0');
  std::vsnprintf(text.data(), text.size(), format, args);
  text.resize(static_cast<std::size_t>(length));
  std::lock_guard lock(linesMutex);
  if (capturedLines != nullptr) capturedLines->push_back({level, std::move(text)});
  return length;
}

int forwardTo(libbpf_print_fn_t print, enum libbpf_print_level level, const char* format, ...) {
  va_list args;
  va_start(args, format);
  const int result = print(level, format, args);
  va_end(args);
  return result;
}

class LibbpfOutputCapture {
 public:
  LibbpfOutputCapture() : lock_(captureMutex) {
    {
      std::lock_guard lines(linesMutex);
      capturedLines = &lines_;
    }
    previous_ = libbpf_set_print(captureLibbpfOutput);
  }
  ~LibbpfOutputCapture() { finish(true); }
  LibbpfOutputCapture(const LibbpfOutputCapture&) = delete;
  LibbpfOutputCapture& operator=(const LibbpfOutputCapture&) = delete;

  // Forgets what libbpf printed so far (an attempt that is retried another way).
  void discard() {
    std::lock_guard lines(linesMutex);
    lines_.clear();
  }

  // Puts the application's callback back and, when `forward`, passes it what libbpf printed.
  void finish(bool forward) {
    if (done_) return;
    done_ = true;
    libbpf_set_print(previous_);
    {
      std::lock_guard lines(linesMutex);
      capturedLines = nullptr;
    }
    if (!forward || previous_ == nullptr) return;
    for (const CapturedLine& line : lines_) forwardTo(previous_, line.level, "%s", line.text.c_str());
  }

 private:
  std::lock_guard<std::mutex> lock_;
  libbpf_print_fn_t previous_ = nullptr;
  std::vector<CapturedLine> lines_;
  bool done_ = false;
};

std::string describeInterface(int ifindex) {
  char name[IF_NAMESIZE] = {};
  if (if_indextoname(static_cast<unsigned>(ifindex), name) == nullptr) {
    return fmt::format("ifindex {}", ifindex);
  }
  return fmt::format("{} (ifindex {})", name, ifindex);
}

std::string describeProgram(std::uint32_t id) {
  std::string description = fmt::format("id {}", id);
  const int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return description;
  bpf_prog_info info{};
  std::uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &length) == 0 && info.name[0] != '\0') {
    description += fmt::format(" \"{}\"", info.name);
  }
  close(fd);
  return description;
}

const char* attachModeName(std::uint8_t mode) {
  switch (mode) {
    case XDP_ATTACHED_DRV:
      return "native";
    case XDP_ATTACHED_SKB:
      return "generic";
    case XDP_ATTACHED_HW:
      return "offloaded";
    case XDP_ATTACHED_MULTI:
      return "several modes";
    default:
      return "unknown mode";
  }
}

// The XDP program already on ifindex, 0 when there is none.
Result<std::uint32_t> attachedProgramId(int ifindex, std::uint8_t* mode) {
  bpf_xdp_query_opts query{};
  query.sz = sizeof(query);
  const int err = bpf_xdp_query(ifindex, 0, &query);
  if (err != 0) return Error(-err, fmt::format("query XDP programs on {}", describeInterface(ifindex)));
  *mode = query.attach_mode;
  for (const std::uint32_t id : {query.prog_id, query.drv_prog_id, query.skb_prog_id, query.hw_prog_id}) {
    if (id != 0) return id;
  }
  return 0u;
}

std::uint32_t programIdOf(int fd) {
  bpf_prog_info info{};
  std::uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0) return 0;
  return info.id;
}

}  // namespace

struct SteeringProgram::Impl {
  mpxdp_steer* skeleton = nullptr;
  std::uint32_t programId = 0;
  ArrivalStamp arrivalStamp = ArrivalStamp::kNone;

  // Control-path state; the data path only reads the maps.
  std::mutex mutex;
  std::map<int, bpf_link*> links;                                     // ifindex -> attachment
  std::map<std::pair<int, std::uint32_t>, std::uint32_t> boundSlots;  // (ifindex, queue) -> slot
  std::array<bool, MPXDP_MAX_SOCKETS> slotUsed{};

  ~Impl() {
    for (auto& [ifindex, link] : links) bpf_link__destroy(link);
    mpxdp_steer__destroy(skeleton);
  }
};

SteeringProgram::SteeringProgram(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SteeringProgram::~SteeringProgram() = default;

namespace {

std::uint32_t stampModeOf(ArrivalStamp stamp) noexcept {
  switch (stamp) {
    case ArrivalStamp::kMetadata:
      return MPXDP_STAMP_META;
    case ArrivalStamp::kPrepended:
      return MPXDP_STAMP_PREPEND;
    case ArrivalStamp::kAuto:
    case ArrivalStamp::kNone:
      break;
  }
  return MPXDP_STAMP_NONE;
}

}  // namespace

Result<std::unique_ptr<SteeringProgram>> SteeringProgram::load(const SteeringOptions& options) {
  if (options.udpPort == 0) return Error(EINVAL, "steering program: UDP port 0 cannot be steered");
  std::vector<ArrivalStamp> attempts{options.arrivalStamp};
  if (options.arrivalStamp == ArrivalStamp::kAuto) {
    attempts = {ArrivalStamp::kMetadata, ArrivalStamp::kPrepended, ArrivalStamp::kNone};
  }
  LibbpfOutputCapture capture;
  auto impl = std::make_unique<Impl>();
  for (std::size_t i = 0; i < attempts.size(); ++i) {
    const bool last = i + 1 == attempts.size();
    impl->skeleton = mpxdp_steer__open();
    if (impl->skeleton == nullptr) return Error::fromErrno("steering program: open the embedded BPF object");
    // .rodata is frozen at load: it must be written before.
    impl->skeleton->rodata->steer_udp_port = htons(options.udpPort);
    impl->skeleton->rodata->stamp_mode = stampModeOf(attempts[i]);
    const int err = mpxdp_steer__load(impl->skeleton);
    if (err == 0) {
      impl->arrivalStamp = attempts[i];
      break;
    }
    if (err == -EPERM) {
      capture.finish(false);  // libbpf's multi-line account of the refusal adds nothing
      return Error(-err, "the XDP program needs root (CAP_BPF and CAP_NET_ADMIN)");
    }
    if ((err != -EINVAL && err != -EACCES) || last) {
      return Error(
          -err, "steering program: load into the kernel (details, the verifier's log too, in libbpf's log)");
    }
    // The verifier refused a helper of this way of stamping: try the next.
    mpxdp_steer__destroy(impl->skeleton);
    impl->skeleton = nullptr;
    capture.discard();
  }
  impl->programId = programIdOf(bpf_program__fd(impl->skeleton->progs.xdp_steer));
  return std::unique_ptr<SteeringProgram>(new SteeringProgram(std::move(impl)));
}

Result<void> SteeringProgram::attach(int ifindex) {
  if (ifindex <= 0) return Error(EINVAL, fmt::format("attach XDP: invalid ifindex {}", ifindex));
  std::lock_guard lock(impl_->mutex);
  if (impl_->links.count(ifindex) != 0) {
    return Error(EEXIST, fmt::format("attach XDP: already attached to {}", describeInterface(ifindex)));
  }
  char name[IF_NAMESIZE] = {};
  if (if_indextoname(static_cast<unsigned>(ifindex), name) == nullptr) {
    return Error(ENODEV, fmt::format("attach XDP: no interface with ifindex {}", ifindex));
  }
  // A bpf_link attach would fail on an occupied interface too, but with a bare EBUSY.
  std::uint8_t mode = 0;
  auto existing = attachedProgramId(ifindex, &mode);
  if (!existing.ok()) return existing.error().wrap("attach XDP");
  if (*existing != 0) {
    return Error(EBUSY,
                 fmt::format("attach XDP: {} already has XDP program {} ({}); not replacing it",
                             describeInterface(ifindex), describeProgram(*existing), attachModeName(mode)));
  }
  LibbpfOutputCapture capture;
  bpf_link* link = bpf_program__attach_xdp(impl_->skeleton->progs.xdp_steer, ifindex);
  if (link == nullptr) {
    const int code = errno;
    capture.finish(false);  // the error below says the same
    return Error(code, fmt::format("attach XDP to {} through bpf_link", describeInterface(ifindex)));
  }
  impl_->links.emplace(ifindex, link);
  return {};
}

Result<void> SteeringProgram::detach(int ifindex) {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->links.find(ifindex);
  if (it == impl_->links.end()) {
    return Error(ENOENT, fmt::format("detach XDP: not attached to {}", describeInterface(ifindex)));
  }
  const int err = bpf_link__destroy(it->second);
  impl_->links.erase(it);
  if (err != 0) return Error(-err, fmt::format("detach XDP from {}", describeInterface(ifindex)));
  return {};
}

Result<void> SteeringProgram::bindSocket(int ifindex, std::uint32_t queue, int xskFd) {
  if (ifindex <= 0) return Error(EINVAL, fmt::format("bind AF_XDP socket: invalid ifindex {}", ifindex));
  if (xskFd < 0) return Error(EBADF, fmt::format("bind AF_XDP socket: invalid fd {}", xskFd));
  const std::string where = fmt::format("{} queue {}", describeInterface(ifindex), queue);
  std::lock_guard lock(impl_->mutex);
  if (impl_->boundSlots.count({ifindex, queue}) != 0) {
    return Error(EEXIST, fmt::format("bind AF_XDP socket: {} already has a socket", where));
  }
  std::uint32_t slot = 0;
  while (slot < MPXDP_MAX_SOCKETS && impl_->slotUsed[slot]) ++slot;
  if (slot == MPXDP_MAX_SOCKETS) {
    return Error(ENOSPC, fmt::format("bind AF_XDP socket: all {} slots in use, none left for {}",
                                     MPXDP_MAX_SOCKETS, where));
  }

  // Socket first, then the key that leads to it: the program never finds a slot without a socket.
  const std::uint32_t fdValue = static_cast<std::uint32_t>(xskFd);
  int err = bpf_map__update_elem(impl_->skeleton->maps.xsks, &slot, sizeof(slot), &fdValue, sizeof(fdValue),
                                 BPF_ANY);
  if (err != 0) {
    return Error(-err,
                 fmt::format("bind AF_XDP socket: put fd {} into XSKMAP slot {} for {}", xskFd, slot, where));
  }
  const mpxdp_slot_key key{static_cast<std::uint32_t>(ifindex), queue};
  err =
      bpf_map__update_elem(impl_->skeleton->maps.slots, &key, sizeof(key), &slot, sizeof(slot), BPF_NOEXIST);
  if (err != 0) {
    bpf_map__delete_elem(impl_->skeleton->maps.xsks, &slot, sizeof(slot), 0);
    return Error(-err, fmt::format("bind AF_XDP socket: record slot {} for {}", slot, where));
  }
  impl_->slotUsed[slot] = true;
  impl_->boundSlots.emplace(std::pair{ifindex, queue}, slot);
  return {};
}

Result<void> SteeringProgram::unbindSocket(int ifindex, std::uint32_t queue) {
  const std::string where = fmt::format("{} queue {}", describeInterface(ifindex), queue);
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->boundSlots.find({ifindex, queue});
  if (it == impl_->boundSlots.end()) {
    return Error(ENOENT, fmt::format("unbind AF_XDP socket: no socket bound for {}", where));
  }
  const std::uint32_t slot = it->second;
  const mpxdp_slot_key key{static_cast<std::uint32_t>(ifindex), queue};
  int err = bpf_map__delete_elem(impl_->skeleton->maps.slots, &key, sizeof(key), 0);
  if (err != 0) return Error(-err, fmt::format("unbind AF_XDP socket: remove slot key for {}", where));
  impl_->boundSlots.erase(it);
  err = bpf_map__delete_elem(impl_->skeleton->maps.xsks, &slot, sizeof(slot), 0);
  if (err != 0 && err != -ENOENT) {
    // The key is gone, so no packet reaches the slot; keep it reserved rather than reuse a dirty one.
    return Error(-err, fmt::format("unbind AF_XDP socket: clear XSKMAP slot {} for {}", slot, where));
  }
  impl_->slotUsed[slot] = false;
  return {};
}

Result<SteeringCounters> SteeringProgram::counters() const {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Error(-cpus, "steering counters: count possible CPUs");
  std::vector<mpxdp_counters> perCpu(static_cast<std::size_t>(cpus));
  const std::uint32_t key = 0;
  const int err = bpf_map__lookup_elem(impl_->skeleton->maps.counters, &key, sizeof(key), perCpu.data(),
                                       perCpu.size() * sizeof(mpxdp_counters), 0);
  if (err != 0) return Error(-err, "steering counters: read the per-CPU map");
  SteeringCounters total;
  for (const mpxdp_counters& c : perCpu) {
    total.redirected += c.redirected;
    total.passed += c.passed;
    total.malformed += c.malformed;
    total.noSocket += c.no_socket;
  }
  return total;
}

ArrivalStamp SteeringProgram::arrivalStamp() const noexcept { return impl_->arrivalStamp; }

std::string_view describe(ArrivalStamp stamp) noexcept {
  switch (stamp) {
    case ArrivalStamp::kAuto:
      return "stamp-auto";
    case ArrivalStamp::kMetadata:
      return "stamp-metadata";
    case ArrivalStamp::kPrepended:
      return "stamp-in-frame";
    case ArrivalStamp::kNone:
      return "no-stamp";
  }
  return "stamp-unknown";
}

int SteeringProgram::programFd() const noexcept { return bpf_program__fd(impl_->skeleton->progs.xdp_steer); }

std::uint32_t SteeringProgram::programId() const noexcept { return impl_->programId; }

}  // namespace mpxdp::bpf
