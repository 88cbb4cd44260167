#include "offload.h"

namespace mpxdp::tun {}  // namespace mpxdp::tun
