// mpxdp: one multipath connection over several links between two Linux hosts,
// the data path on AF_XDP (or kernel UDP). This umbrella header is the whole
// public API; link with libmpxdp (CMake: find_package(mpxdp) and
// mpxdp::mpxdp; pkg-config: mpxdp). See examples/.
#pragma once

#include "mpxdp/address.h"     // IpAddress, MacAddress
#include "mpxdp/clock.h"       // Clock, MonotonicClock, ManualClock
#include "mpxdp/connection.h"  // Connection and its config, state, stats
#include "mpxdp/endpoint.h"    // Endpoint over any PacketIo paths
#include "mpxdp/error.h"       // Error, Result
#include "mpxdp/export.h"      // MPXDP_API
#include "mpxdp/links.h"       // openEndpoint over real links (AF_XDP or UDP)
#include "mpxdp/options.h"     // SchedulerKind, ReorderKind, ReorderOptions
#include "mpxdp/packet_io.h"   // PacketIo, the link interface
#include "mpxdp/path.h"        // PathState, PathEvent
#include "mpxdp/security.h"    // SecurityOptions, keys, ciphers
