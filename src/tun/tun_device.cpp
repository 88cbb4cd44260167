#include "tun_device.h"

namespace mpxdp::tun {}  // namespace mpxdp::tun
