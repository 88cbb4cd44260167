// The check that an unreliable transfer on the lossless test bed delivered
// everything it could: the receiver's JSON report against the sender's.
#pragma once

#include <nlohmann/json.hpp>

namespace mpxdp::test {

// Nothing declared lost that the receiving host did not drop, the sender's
// link did not refuse, or that did not arrive late (a stalled VM's); nothing
// late that this host held readable when its loss was judged; everything else
// delivered in order and intact. Prints the counts. Failures are gtest
// EXPECTs.
void expectCleanDelivery(const nlohmann::json& receiver, const nlohmann::json& sender);

}  // namespace mpxdp::test
