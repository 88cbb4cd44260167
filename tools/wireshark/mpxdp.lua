-- Wireshark/tshark dissector for the mpxdp wire format, version 2 (docs/wire-format.md).
--
--   tshark -X lua_script:tools/wireshark/mpxdp.lua -r capture.pcap -Y mpxdp
--
-- Registers on UDP port 47000 (the default mpxdp port) and as a heuristic UDP
-- dissector (magic 0x4D58 "MX" at the start of the payload, version 0 or 2),
-- so any port works. Every field of the packet header, the version
-- negotiation packet and all nine frame types has a filter name below
-- (mpxdp.*). Truncated frames, lengths that claim more bytes than remain,
-- unknown frame types and out-of-range values are expert errors in the
-- "malformed" group, so `_ws.malformed` and `_ws.expert.severity >= error`
-- find them.

local mpxdp = Proto("mpxdp", "mpxdp multipath transport")

local kPort = 47000
local kMagic = 0x4D58
local kVersion = 2
local kVersionNegotiation = 0
local kHeaderLen = 28
local kTagLen = 16     -- AEAD tag of a keyed packet
local kRandomLen = 32  -- a handshake packet's random
local kInvariantsLen = 8

local frameNames = {
  [0] = "PADDING",
  [1] = "DATA",
  [2] = "ACK",
  [3] = "PING",
  [4] = "PONG",
  [5] = "PATH_STATUS",
  [6] = "CLOSE",
  [7] = "HELLO",
  [8] = "REPORT",
  [9] = "MAX_SEQ",
}
local pathStatusNames = { [1] = "active", [2] = "standby", [3] = "abandoned" }
local roleNames = { [0] = "client", [1] = "server" }
local closeErrorNames = {
  [0] = "none (graceful)",
  [1] = "wire version",
  [2] = "path mismatch",
  [3] = "payload too large",
  [4] = "peer gone",
  [5] = "stopped",
  [6] = "busy",
  [7] = "protocol violation",
}

local F = {}
local function field(key, ctor, ...)
  F[key] = ctor("mpxdp." .. key, ...)
end

-- Packet header (28 bytes; the first 8 are the invariants of every version).
field("magic", ProtoField.uint16, "Magic", base.HEX)
field("version", ProtoField.uint8, "Version", base.DEC)
field("flags", ProtoField.uint8, "Flags", base.HEX)
field("flags.protected", ProtoField.bool, "Protected (session key)", 8, nil, 0x01)
field("flags.handshake", ProtoField.bool, "Handshake (pre-shared key)", 8, nil, 0x02)
field("flags.key_phase", ProtoField.bool, "Key phase", 8, nil, 0x04)
-- Keyed connections (docs/security.md): sealed frames, the AEAD tag, a handshake packet's random.
field("sealed", ProtoField.bytes, "Sealed frames")
field("tag", ProtoField.bytes, "AEAD tag")
field("random", ProtoField.bytes, "Sender's random")
field("conn_id", ProtoField.uint32, "Connection ID", base.DEC)
field("path_id", ProtoField.uint16, "Path ID", base.DEC)
field("reserved", ProtoField.uint16, "Reserved", base.HEX)
field("packet_number", ProtoField.uint64, "Packet number", base.DEC)
field("send_ts", ProtoField.uint64, "Send timestamp (ns)", base.DEC)
-- Version negotiation packet (version byte 0).
field("vn.count", ProtoField.uint8, "Version count", base.DEC)
field("vn.version", ProtoField.uint8, "Supported version", base.DEC)
-- Every frame.
field("frame", ProtoField.none, "Frame")
field("frame.type", ProtoField.uint8, "Frame type", base.DEC, frameNames)
field("frame.length", ProtoField.uint32, "Frame length (incl. type)", base.DEC)
-- 0x00 PADDING
field("padding.length", ProtoField.uint32, "Padding length (incl. type)", base.DEC)
-- 0x01 DATA
field("data.flags", ProtoField.uint8, "Flags", base.HEX)
field("data.length", ProtoField.uint16, "Length", base.DEC)
field("data.global_seq", ProtoField.uint64, "Global sequence", base.DEC)
field("data.payload", ProtoField.bytes, "Data")
-- 0x02 ACK
field("ack.range_count", ProtoField.uint8, "Range count", base.DEC)
field("ack.path_id", ProtoField.uint16, "Acknowledged path ID", base.DEC)
field("ack.delay_us", ProtoField.uint32, "ACK delay (us)", base.DEC)
field("ack.largest", ProtoField.uint64, "Largest acknowledged", base.DEC)
field("ack.largest_recv_ts", ProtoField.uint64, "Largest received at (ns)", base.DEC)
field("ack.bytes_received", ProtoField.uint64, "Bytes received", base.DEC)
field("ack.first_range", ProtoField.uint32, "First range", base.DEC)
field("ack.gap", ProtoField.uint32, "Gap", base.DEC)
field("ack.range_length", ProtoField.uint32, "Range length", base.DEC)
field("ack.range", ProtoField.string, "Acknowledged range")
field("ack.range.largest", ProtoField.uint64, "Range largest", base.DEC)
field("ack.range.smallest", ProtoField.uint64, "Range smallest", base.DEC)
-- 0x03 PING
field("ping.reserved", ProtoField.uint24, "Reserved", base.HEX)
field("ping.id", ProtoField.uint32, "Ping ID", base.DEC)
-- 0x04 PONG
field("pong.reserved", ProtoField.uint8, "Reserved", base.HEX)
field("pong.path_id", ProtoField.uint16, "Ping path ID", base.DEC)
field("pong.ping_id", ProtoField.uint32, "Ping ID", base.DEC)
field("pong.ping_send_ts", ProtoField.uint64, "Ping send timestamp (ns)", base.DEC)
field("pong.hold_ns", ProtoField.uint32, "Hold time (ns)", base.DEC)
-- 0x05 PATH_STATUS
field("path_status.status", ProtoField.uint8, "Status", base.DEC, pathStatusNames)
field("path_status.path_id", ProtoField.uint16, "Path ID", base.DEC)
field("path_status.seq", ProtoField.uint32, "Status sequence", base.DEC)
-- 0x06 CLOSE
field("close.flags", ProtoField.uint8, "Flags", base.HEX)
field("close.stream_complete", ProtoField.bool, "Stream complete", 8, nil, 0x01)
field("close.error_code", ProtoField.uint16, "Error code", base.DEC, closeErrorNames)
field("close.final_seq", ProtoField.uint64, "Final sequence", base.DEC)
field("close.reason_len", ProtoField.uint16, "Reason length", base.DEC)
field("close.reason", ProtoField.string, "Reason")
-- 0x07 HELLO
field("hello.role", ProtoField.uint8, "Role", base.DEC, roleNames)
field("hello.path_count", ProtoField.uint16, "Path count", base.DEC)
field("hello.mode", ProtoField.uint8, "Mode", base.HEX)
field("hello.mode.client_sends", ProtoField.bool, "Client sends", 8, nil, 0x01)
field("hello.mode.server_sends", ProtoField.bool, "Server sends", 8, nil, 0x02)
field("hello.mode.reliable", ProtoField.bool, "Reliable", 8, nil, 0x04)
field("hello.cipher", ProtoField.uint8, "Cipher", base.DEC,
      { [0] = "none (unkeyed)", [1] = "ChaCha20-Poly1305", [2] = "AES-256-GCM" })
field("hello.max_payload", ProtoField.uint16, "Max payload", base.DEC)
field("hello.rate_bps", ProtoField.uint64, "Requested rate (bit/s)", base.DEC)
field("hello.duration_ms", ProtoField.uint32, "Requested duration (ms)", base.DEC)
field("hello.name_len", ProtoField.uint8, "Name length", base.DEC)
field("hello.name", ProtoField.string, "Interface name")
-- 0x08 REPORT
field("report.path_count", ProtoField.uint8, "Path count", base.DEC)
-- 0x09 MAX_SEQ
field("max_seq.reserved", ProtoField.uint24, "Reserved", base.HEX)
field("max_seq.max_seq", ProtoField.uint64, "Maximum sequence (exclusive)", base.DEC)
field("report.reserved", ProtoField.uint16, "Reserved", base.HEX)
field("report.duration_ns", ProtoField.uint64, "Duration (ns)", base.DEC)
field("report.packets", ProtoField.uint64, "Packets", base.DEC)
field("report.bytes", ProtoField.uint64, "Bytes", base.DEC)
field("report.lost", ProtoField.uint64, "Lost", base.DEC)
field("report.late", ProtoField.uint64, "Late", base.DEC)
field("report.out_of_order", ProtoField.uint64, "Out of order", base.DEC)
field("report.duplicates", ProtoField.uint64, "Duplicates", base.DEC)
field("report.malformed", ProtoField.uint64, "Malformed", base.DEC)
field("report.path", ProtoField.none, "Path")
field("report.path.packets", ProtoField.uint64, "Path packets", base.DEC)
field("report.path.bytes", ProtoField.uint64, "Path bytes", base.DEC)
field("report.path.lost", ProtoField.uint64, "Path lost", base.DEC)

local fieldList = {}
for _, f in pairs(F) do
  fieldList[#fieldList + 1] = f
end
mpxdp.fields = fieldList

local E = {
  truncated = ProtoExpert.new("mpxdp.truncated", "Truncated: runs past the end of the UDP payload",
    expert.group.MALFORMED, expert.severity.ERROR),
  unknown_frame = ProtoExpert.new("mpxdp.unknown_frame", "Unknown frame type", expert.group.MALFORMED,
    expert.severity.ERROR),
  bad_value = ProtoExpert.new("mpxdp.bad_value", "Field value out of range", expert.group.MALFORMED,
    expert.severity.ERROR),
  no_frames = ProtoExpert.new("mpxdp.no_frames", "Packet holds no frame", expert.group.MALFORMED,
    expert.severity.ERROR),
  other_version = ProtoExpert.new("mpxdp.other_version", "Wire version this dissector does not decode",
    expert.group.PROTOCOL, expert.severity.WARN),
}
mpxdp.experts = { E.truncated, E.unknown_frame, E.bad_value, E.no_frames, E.other_version }

-- Decoded frames report a one-line summary for the Info column; a frame that
-- cannot be decoded returns nil and stops the packet (as FrameReader does).

local function truncated(item, what)
  item:add_proto_expert_info(E.truncated, "Truncated " .. what)
  return nil
end

-- Fixed-size frames: is `need` bytes available from `off` within the payload of `len`?
local function fits(off, need, len)
  return off + need <= len
end

local function dissectPadding(tvb, tree, off, len)
  local n = len - off
  tree:add(F["padding.length"], tvb(off, n), n)
  for i = off + 1, len - 1 do
    if tvb(i, 1):uint() ~= 0 then
      tree:add_proto_expert_info(E.bad_value, "PADDING byte at payload offset " .. i .. " is not zero")
      return nil, n
    end
  end
  return "PADDING " .. n, n
end

local function dissectData(tvb, tree, off, len)
  if not fits(off, 12, len) then return truncated(tree, "DATA header") end
  tree:add(F["data.flags"], tvb(off + 1, 1))
  local dataLen = tvb(off + 2, 2):uint()
  local lenItem = tree:add(F["data.length"], tvb(off + 2, 2))
  local seq = tvb(off + 4, 8):uint64()
  tree:add(F["data.global_seq"], tvb(off + 4, 8))
  if not fits(off + 12, dataLen, len) then
    return truncated(lenItem, "DATA: length " .. dataLen .. " but " .. (len - off - 12) .. " bytes remain")
  end
  if dataLen > 0 then tree:add(F["data.payload"], tvb(off + 12, dataLen)) end
  return "DATA seq=" .. tostring(seq) .. " len=" .. dataLen, 12 + dataLen
end

local function dissectAck(tvb, tree, off, len)
  if not fits(off, 36, len) then return truncated(tree, "ACK") end
  local count = tvb(off + 1, 1):uint()
  local countItem = tree:add(F["ack.range_count"], tvb(off + 1, 1))
  local path = tvb(off + 2, 2):uint()
  tree:add(F["ack.path_id"], tvb(off + 2, 2))
  tree:add(F["ack.delay_us"], tvb(off + 4, 4))
  local largest = tvb(off + 8, 8):uint64()
  tree:add(F["ack.largest"], tvb(off + 8, 8))
  tree:add(F["ack.largest_recv_ts"], tvb(off + 16, 8))
  tree:add(F["ack.bytes_received"], tvb(off + 24, 8))
  local first = tvb(off + 32, 4):uint()
  local firstItem = tree:add(F["ack.first_range"], tvb(off + 32, 4))
  if count == 0 or count > 32 then
    countItem:add_proto_expert_info(E.bad_value, "ACK range_count " .. count .. " is not 1..32")
    return nil
  end
  local size = 36 + 8 * (count - 1)
  if not fits(off, size, len) then
    return truncated(countItem, "ACK: range_count " .. count .. " needs " .. size .. " bytes, " ..
      (len - off) .. " remain")
  end
  local function addRange(node, hi, lo)
    local r = node:add(F["ack.range"], tvb(off, size), "[" .. tostring(lo) .. ", " .. tostring(hi) .. "]")
    r:set_generated()
    r:add(F["ack.range.largest"], tvb(off, size), hi):set_generated()
    r:add(F["ack.range.smallest"], tvb(off, size), lo):set_generated()
  end
  if UInt64.new(first) > largest then
    firstItem:add_proto_expert_info(E.bad_value, "ACK first_range goes below packet number 0")
    return nil
  end
  local smallest = largest - first
  addRange(tree, largest, smallest)
  for i = 1, count - 1 do
    local p = off + 36 + 8 * (i - 1)
    local gap = tvb(p, 4):uint()
    local length = tvb(p + 4, 4):uint()
    local gapItem = tree:add(F["ack.gap"], tvb(p, 4))
    tree:add(F["ack.range_length"], tvb(p + 4, 4))
    if UInt64.new(gap) + 2 > smallest then
      gapItem:add_proto_expert_info(E.bad_value, "ACK gap goes below packet number 0")
      return nil
    end
    local hi = smallest - gap - 2
    if UInt64.new(length) > hi then
      gapItem:add_proto_expert_info(E.bad_value, "ACK range length goes below packet number 0")
      return nil
    end
    smallest = hi - length
    addRange(tree, hi, smallest)
  end
  return "ACK path " .. path .. " largest " .. tostring(largest), size
end

local function dissectPing(tvb, tree, off, len)
  if not fits(off, 8, len) then return truncated(tree, "PING") end
  tree:add(F["ping.reserved"], tvb(off + 1, 3))
  local id = tvb(off + 4, 4):uint()
  tree:add(F["ping.id"], tvb(off + 4, 4))
  return "PING id=" .. id, 8
end

local function dissectMaxSeq(tvb, tree, off, len)
  if not fits(off, 12, len) then return truncated(tree, "MAX_SEQ") end
  tree:add(F["max_seq.reserved"], tvb(off + 1, 3))
  tree:add(F["max_seq.max_seq"], tvb(off + 4, 8))
  return "MAX_SEQ " .. tostring(tvb(off + 4, 8):uint64()), 12
end

local function dissectPong(tvb, tree, off, len)
  if not fits(off, 20, len) then return truncated(tree, "PONG") end
  tree:add(F["pong.reserved"], tvb(off + 1, 1))
  local path = tvb(off + 2, 2):uint()
  tree:add(F["pong.path_id"], tvb(off + 2, 2))
  local id = tvb(off + 4, 4):uint()
  tree:add(F["pong.ping_id"], tvb(off + 4, 4))
  tree:add(F["pong.ping_send_ts"], tvb(off + 8, 8))
  tree:add(F["pong.hold_ns"], tvb(off + 16, 4))
  return "PONG path " .. path .. " id=" .. id, 20
end

local function dissectPathStatus(tvb, tree, off, len)
  if not fits(off, 8, len) then return truncated(tree, "PATH_STATUS") end
  local status = tvb(off + 1, 1):uint()
  local statusItem = tree:add(F["path_status.status"], tvb(off + 1, 1))
  local path = tvb(off + 2, 2):uint()
  tree:add(F["path_status.path_id"], tvb(off + 2, 2))
  tree:add(F["path_status.seq"], tvb(off + 4, 4))
  if pathStatusNames[status] == nil then
    statusItem:add_proto_expert_info(E.bad_value, "PATH_STATUS status " .. status .. " is not 1..3")
    return nil
  end
  return "PATH_STATUS path " .. path .. " " .. pathStatusNames[status], 8
end

local function dissectClose(tvb, tree, off, len)
  if not fits(off, 14, len) then return truncated(tree, "CLOSE") end
  local flagsItem = tree:add(F["close.flags"], tvb(off + 1, 1))
  flagsItem:add(F["close.stream_complete"], tvb(off + 1, 1))
  local code = tvb(off + 2, 2):uint()
  tree:add(F["close.error_code"], tvb(off + 2, 2))
  tree:add(F["close.final_seq"], tvb(off + 4, 8))
  local reasonLen = tvb(off + 12, 2):uint()
  local lenItem = tree:add(F["close.reason_len"], tvb(off + 12, 2))
  if not fits(off + 14, reasonLen, len) then
    return truncated(lenItem, "CLOSE: reason_len " .. reasonLen .. " but " .. (len - off - 14) .. " bytes remain")
  end
  local summary = "CLOSE error " .. code
  if reasonLen > 0 then
    tree:add(F["close.reason"], tvb(off + 14, reasonLen), tvb(off + 14, reasonLen):string(ENC_UTF_8))
    summary = summary .. " \"" .. tvb(off + 14, reasonLen):string(ENC_UTF_8) .. "\""
  end
  return summary, 14 + reasonLen
end

local function dissectHello(tvb, tree, off, len)
  if not fits(off, 21, len) then return truncated(tree, "HELLO") end
  local role = tvb(off + 1, 1):uint()
  local roleItem = tree:add(F["hello.role"], tvb(off + 1, 1))
  local paths = tvb(off + 2, 2):uint()
  tree:add(F["hello.path_count"], tvb(off + 2, 2))
  local modeItem = tree:add(F["hello.mode"], tvb(off + 4, 1))
  modeItem:add(F["hello.mode.client_sends"], tvb(off + 4, 1))
  modeItem:add(F["hello.mode.server_sends"], tvb(off + 4, 1))
  modeItem:add(F["hello.mode.reliable"], tvb(off + 4, 1))
  tree:add(F["hello.cipher"], tvb(off + 5, 1))
  tree:add(F["hello.max_payload"], tvb(off + 6, 2))
  tree:add(F["hello.rate_bps"], tvb(off + 8, 8))
  tree:add(F["hello.duration_ms"], tvb(off + 16, 4))
  local nameLen = tvb(off + 20, 1):uint()
  local lenItem = tree:add(F["hello.name_len"], tvb(off + 20, 1))
  if roleNames[role] == nil then
    roleItem:add_proto_expert_info(E.bad_value, "HELLO role " .. role .. " is not 0 or 1")
    return nil
  end
  if not fits(off + 21, nameLen, len) then
    return truncated(lenItem, "HELLO: name_len " .. nameLen .. " but " .. (len - off - 21) .. " bytes remain")
  end
  local name = ""
  if nameLen > 0 then
    name = tvb(off + 21, nameLen):string(ENC_UTF_8)
    tree:add(F["hello.name"], tvb(off + 21, nameLen), name)
  end
  return "HELLO " .. roleNames[role] .. " paths=" .. paths .. " " .. name, 21 + nameLen
end

local function dissectReport(tvb, tree, off, len)
  if not fits(off, 68, len) then return truncated(tree, "REPORT") end
  local count = tvb(off + 1, 1):uint()
  local countItem = tree:add(F["report.path_count"], tvb(off + 1, 1))
  tree:add(F["report.reserved"], tvb(off + 2, 2))
  local names = { "duration_ns", "packets", "bytes", "lost", "late", "out_of_order", "duplicates", "malformed" }
  for i, name in ipairs(names) do
    tree:add(F["report." .. name], tvb(off + 4 + 8 * (i - 1), 8))
  end
  if count > 32 then
    countItem:add_proto_expert_info(E.bad_value, "REPORT path_count " .. count .. " is more than 32")
    return nil
  end
  local size = 68 + 24 * count
  if not fits(off, size, len) then
    return truncated(countItem, "REPORT: path_count " .. count .. " needs " .. size .. " bytes, " ..
      (len - off) .. " remain")
  end
  for i = 0, count - 1 do
    local p = off + 68 + 24 * i
    local node = tree:add(F["report.path"], tvb(p, 24))
    node:append_text(" " .. i)
    node:add(F["report.path.packets"], tvb(p, 8))
    node:add(F["report.path.bytes"], tvb(p + 8, 8))
    node:add(F["report.path.lost"], tvb(p + 16, 8))
  end
  return "REPORT packets=" .. tostring(tvb(off + 12, 8):uint64()) .. " lost=" ..
    tostring(tvb(off + 28, 8):uint64()), size
end

local dissectors = {
  [0] = dissectPadding,
  [1] = dissectData,
  [2] = dissectAck,
  [3] = dissectPing,
  [4] = dissectPong,
  [5] = dissectPathStatus,
  [6] = dissectClose,
  [7] = dissectHello,
  [8] = dissectReport,
  [9] = dissectMaxSeq,
}

local function dissectVersionNegotiation(tvb, tree, len)
  if len < 9 then
    tree:add_proto_expert_info(E.truncated, "Truncated version negotiation packet: no count")
    return "Version negotiation (truncated)"
  end
  local count = tvb(8, 1):uint()
  local countItem = tree:add(F["vn.count"], tvb(8, 1))
  if count == 0 or count > 16 then
    countItem:add_proto_expert_info(E.bad_value, "Version count " .. count .. " is not 1..16")
  end
  local shown = math.min(count, len - 9)
  local versions = {}
  for i = 0, shown - 1 do
    tree:add(F["vn.version"], tvb(9 + i, 1))
    versions[#versions + 1] = tostring(tvb(9 + i, 1):uint())
  end
  if shown < count then
    countItem:add_proto_expert_info(E.truncated, "Version count " .. count .. " but " .. shown .. " versions present")
  end
  return "Version negotiation: " .. table.concat(versions, ",")
end

local function dissectFrames(tvb, pinfo, tree, len)
  local summaries = {}
  local off = kHeaderLen
  if off >= len then
    tree:add_proto_expert_info(E.no_frames)
    return "(no frames)"
  end
  while off < len do
    local ftype = tvb(off, 1):uint()
    local name = frameNames[ftype] or "unknown"
    -- Sized to the rest for now; set_len fixes it once the frame's size is known.
    local node = tree:add(F["frame"], tvb(off, len - off))
    node:append_text(": " .. name)
    node:add(F["frame.type"], tvb(off, 1))
    local dissect = dissectors[ftype]
    if dissect == nil then
      node:add_proto_expert_info(E.unknown_frame, "Unknown frame type " .. ftype)
      summaries[#summaries + 1] = "unknown frame " .. ftype
      break
    end
    local summary, size = dissect(tvb, node, off, len)
    if summary == nil then
      summaries[#summaries + 1] = name .. " (malformed)"
      break
    end
    node:set_len(size)
    node:add(F["frame.length"], tvb(off, size), size):set_generated()
    summaries[#summaries + 1] = summary
    off = off + size
  end
  return table.concat(summaries, ", ")
end

local function dissect(tvb, pinfo, tree)
  local len = tvb:len()
  if len < kInvariantsLen or tvb(0, 2):uint() ~= kMagic then return 0 end
  pinfo.cols.protocol:set("MPXDP")
  local version = tvb(2, 1):uint()
  local headerLen = version == kVersion and math.min(kHeaderLen, len) or kInvariantsLen
  local root = tree:add(mpxdp, tvb())
  root:add(F["magic"], tvb(0, 2))
  root:add(F["version"], tvb(2, 1))
  local flagsItem = root:add(F["flags"], tvb(3, 1))
  flagsItem:add(F["flags.protected"], tvb(3, 1))
  flagsItem:add(F["flags.handshake"], tvb(3, 1))
  flagsItem:add(F["flags.key_phase"], tvb(3, 1))
  local conn = tvb(4, 4):uint()
  root:add(F["conn_id"], tvb(4, 4))

  local info
  if version == kVersionNegotiation then
    root:append_text(", version negotiation, conn " .. conn)
    info = dissectVersionNegotiation(tvb, root, len)
  elseif version ~= kVersion then
    root:add_proto_expert_info(E.other_version, "Wire version " .. version .. " (this dissector decodes 2)")
    info = "Wire version " .. version
  elseif len < kHeaderLen then
    root:add_proto_expert_info(E.truncated, "Truncated packet header: " .. len .. " of 28 bytes")
    info = "(truncated header)"
  else
    local path = tvb(8, 2):uint()
    local pn = tvb(12, 8):uint64()
    root:add(F["path_id"], tvb(8, 2))
    root:add(F["reserved"], tvb(10, 2))
    root:add(F["packet_number"], tvb(12, 8))
    root:add(F["send_ts"], tvb(20, 8))
    root:append_text(", conn " .. conn .. ", path " .. path .. ", pn " .. tostring(pn))
    local flags = tvb(3, 1):uint()
    local handshake = bit.band(flags, 0x02) ~= 0
    if bit.band(flags, 0x03) ~= 0 then
      -- Sealed: only the keys' holders read the frames.
      local trailer = kTagLen + (handshake and kRandomLen or 0)
      if len < kHeaderLen + trailer then
        root:add_proto_expert_info(E.truncated, "Sealed packet shorter than its tag")
        info = "(truncated sealed packet)"
      else
        local sealedLen = len - kHeaderLen - trailer
        if sealedLen > 0 then root:add(F["sealed"], tvb(kHeaderLen, sealedLen)) end
        root:add(F["tag"], tvb(kHeaderLen + sealedLen, kTagLen))
        if handshake then root:add(F["random"], tvb(kHeaderLen + sealedLen + kTagLen, kRandomLen)) end
        info = string.format("Sealed %s, %d bytes%s", handshake and "handshake" or "session", sealedLen,
                             handshake and "" or (", key phase " .. (bit.band(flags, 0x04) ~= 0 and 1 or 0)))
      end
    else
      info = dissectFrames(tvb, pinfo, root, len)
    end
  end
  pinfo.cols.info:set(info)
  return len
end

-- Heuristic: the magic and a version we decode (2, or 0 for negotiation);
-- other versions are still decoded on the registered port.
local function heuristic(tvb, pinfo, tree)
  if tvb:len() < kInvariantsLen or tvb(0, 2):uint() ~= kMagic then return false end
  local version = tvb(2, 1):uint()
  if version ~= kVersion and version ~= kVersionNegotiation then return false end
  dissect(tvb, pinfo, tree)
  return true
end

-- The heuristic calls dissect() itself: reading mpxdp.dissector back gives a
-- Dissector handle, and calling that would add a second "mpxdp" layer.
mpxdp.dissector = dissect

DissectorTable.get("udp.port"):add(kPort, mpxdp)
mpxdp:register_heuristic("udp", heuristic)
