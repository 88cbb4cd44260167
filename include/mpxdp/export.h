// MPXDP_API marks the public API. libmpxdp.so is built with hidden visibility
// (and a version script), so only what carries this macro is exported; the
// internals (wire, xsk, transport, sched, reorder, conn) stay private.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define MPXDP_API __attribute__((visibility("default")))
#else
#define MPXDP_API
#endif
