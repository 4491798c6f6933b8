-- Portolan's side of the C interface that Nmap's nse_main.lua, nselib and scripts expect
-- (Nmap implements it in C: nse_main.cc, nse_nmaplib.cc, nse_nsock.cc). Everything that
-- blocks (connect, receive, sleep, mutex, condvar) yields the script thread through the
-- registry protocol nse_main.lua sets up: `coroutine.yield(_R.NSE_YIELD(co))`, and the
-- engine's event pump (`nmap.socket.loop`) wakes it with `_R.NSE_WAITING_TO_RUNNING(co, ...)`.
--
-- Called once with P, the primitives implemented in Rust (crates/portolan-nse/src/*.rs),
-- and C, the run's settings. Returns the `nmap` module, `nmap.socket`, `nmap.dnet`, `lfs`
-- and `cnse` (the private table nse_main.lua receives as its first argument).

local P, C = ...

local _R = debug.getregistry()
local yield = coroutine.yield
local running = coroutine.running
local error, type, tostring, tonumber, pairs, ipairs, select, setmetatable =
  error, type, tostring, tonumber, pairs, ipairs, select, setmetatable
local rawlen, rawequal, pcall = rawlen, rawequal, pcall
local insert, remove, pack, unpack = table.insert, table.remove, table.pack, table.unpack

-- nse_yield: suspend the running script thread until something restores it.
local function nse_yield()
  local co = running()
  return yield(_R.NSE_YIELD(co))
end

-- nse_restore: make a waiting thread runnable again; its yield returns `...`.
local function nse_restore(co, ...)
  _R.NSE_WAITING_TO_RUNNING(co, ...)
end

-- nse_selectedbyname: whether the running script was named on the command line.
local function selected_by_name()
  local f = _R.NSE_SELECTED_BY_NAME
  return f ~= nil and f() and true or false
end

local function nse_destructor(what, co, key, fn)
  _R.NSE_DESTRUCTOR(what, co, key, fn)
end

----------------------------------------------------------------------------------------
-- Hosts being scanned: NSE_CURRENT_HOSTS maps ip and targetname to the engine's index.
----------------------------------------------------------------------------------------
local CURRENT = {}

local function gettarget(host, argn)
  if type(host) ~= "table" then
    error(("bad argument #%d (host table expected, got %s)"):format(argn or 1, type(host)), 3)
  end
  local idx = (host.targetname and CURRENT[host.targetname]) or CURRENT[host.ip]
  if idx == nil then
    error("host not being scanned", 3)
  end
  return idx
end

local PROTOS = { tcp = true, udp = true, sctp = true }

-- nseU_getport: a port table {number, protocol} of the host, or nil when it has no such port.
local function portargs(port, argn)
  if type(port) ~= "table" then
    error(("bad argument #%d (port table expected, got %s)"):format(argn or 2, type(port)), 3)
  end
  local number = tonumber(port.number)
  local protocol = port.protocol
  if number == nil or not PROTOS[protocol] then
    error("port 'number' or 'protocol' field is invalid", 3)
  end
  return math.tointeger(number), protocol
end

----------------------------------------------------------------------------------------
-- cnse: the private interface of nse_main.lua
----------------------------------------------------------------------------------------
local cnse = {}

cnse.fetchfile_absolute = function(name) return P.fetch(tostring(name), false) end
cnse.fetchscript = function(name) return P.fetch(tostring(name), true) end
cnse.key_was_pressed = function() return false end
cnse.scan_progress_meter = function(_)
  return function(op)
    if op == "mayBePrinted" then return false end
  end
end
cnse.timedOut = function(host) return P.timed_out(gettarget(host)) end
cnse.startTimeOutClock = function(host) gettarget(host) end
cnse.stopTimeOutClock = function(host) gettarget(host) end
cnse.ports = function(host)
  local list = P.ports(gettarget(host))
  local i = 0
  return function()
    i = i + 1
    return list[i]
  end, nil, nil
end

-- Script output: the text as Nmap prints it (the script's string, or FORMAT_TABLE of its
-- table) and, for a table, its structure as FORMAT_XML walks it (captured by the xml_*
-- functions below instead of written to an XML stream).
local capture -- the table being built by FORMAT_XML, nil outside set_output
local stack

cnse.xml_start_tag = function(name, attrs)
  if not capture then return end
  local node = { kind = name, key = attrs and attrs.key, items = {}, text = {} }
  local parent = stack[#stack]
  parent.items[#parent.items + 1] = node
  stack[#stack + 1] = node
end
cnse.xml_end_tag = function()
  if not capture then return end
  local node = remove(stack)
  if node.kind == "elem" then
    node.value = table.concat(node.text)
  end
  node.text = nil
end
cnse.xml_write_escaped = function(text)
  if not capture then return end
  local node = stack[#stack]
  node.text[#node.text + 1] = text
end
cnse.xml_newline = function() end
cnse.protect_xml = function(s) return P.protect_xml(s) end
cnse.log_write = function(where, msg) P.log(where, msg) end

local function structure(tab)
  if tab == nil then return nil end
  capture = { items = {} }
  stack = { capture }
  local ok, err = pcall(_R.NSE_FORMAT_XML, tab)
  local items = capture.items
  capture, stack = nil, nil
  if not ok then
    P.debug(1, "NSE: Error in FORMAT_XML: " .. tostring(err))
    return {}
  end
  return items
end

local function text_of(tab, str)
  if type(str) == "string" then return str end
  if tab == nil then return "" end
  local ok, s = pcall(_R.NSE_FORMAT_TABLE, tab)
  if ok and type(s) == "string" then return s end
  P.debug(1, "NSE: Error in FORMAT_TABLE: " .. tostring(s))
  return ""
end

cnse.script_set_output = function(id, tab, str)
  P.set_output(nil, nil, nil, id, text_of(tab, str), structure(tab))
end
cnse.host_set_output = function(host, id, tab, str)
  P.set_output(gettarget(host), nil, nil, id, text_of(tab, str), structure(tab))
end
cnse.port_set_output = function(host, port, id, tab, str)
  local t = gettarget(host)
  local number, protocol = portargs(port, 2)
  P.set_output(t, number, protocol, id, text_of(tab, str), structure(tab))
end

for k, v in pairs(C.cnse) do cnse[k] = v end

----------------------------------------------------------------------------------------
-- nmap
----------------------------------------------------------------------------------------
local nmap = {}

nmap.get_port_state = function(host, port)
  local number, protocol = portargs(port, 2)
  return P.port_info(gettarget(host), number, protocol)
end

local STATES = { open = true, filtered = true, unfiltered = true, closed = true,
  ["open|filtered"] = true, ["closed|filtered"] = true }
nmap.get_ports = function(host, port, protocol, state)
  local t = gettarget(host)
  if not PROTOS[protocol] then error("bad argument #3 (invalid option '" .. tostring(protocol) .. "')", 2) end
  if not STATES[state] then error("bad argument #4 (invalid option '" .. tostring(state) .. "')", 2) end
  local after = nil
  if port ~= nil then after = (portargs(port, 2)) end
  return P.next_port(t, after, protocol, state)
end

nmap.set_port_state = function(host, port, state)
  local number, protocol = portargs(port, 2)
  if state ~= "open" and state ~= "closed" then
    error("bad argument #3 (invalid option '" .. tostring(state) .. "')", 2)
  end
  P.set_port_state(gettarget(host), number, protocol, state)
end

local PROBESTATES = { hardmatched = true, softmatched = true, nomatch = true,
  tcpwrapped = true, incomplete = true }
nmap.set_port_version = function(host, port, probestate)
  local t = gettarget(host)
  local number, protocol = portargs(port, 2)
  probestate = probestate or "hardmatched"
  if not PROBESTATES[probestate] then
    error("bad argument #3 (invalid option '" .. tostring(probestate) .. "')", 2)
  end
  local v = port.version
  if type(v) ~= "table" then error("port 'version' field must be a table", 2) end
  local tunnel = v.service_tunnel
  if tunnel ~= nil and tunnel ~= "none" and tunnel ~= "ssl" then
    error("bad argument #2 (invalid value for port.version.service_tunnel)", 2)
  end
  local cpe = {}
  if v.cpe ~= nil then
    if type(v.cpe) ~= "table" then error("port.version 'cpe' field must be a table", 2) end
    for _, c in pairs(v.cpe) do cpe[#cpe + 1] = tostring(c) end
  end
  local function s(x) if x == nil then return nil end return tostring(x) end
  P.set_port_version(t, number, protocol, probestate, {
    name = s(v.name), product = s(v.product), version = s(v.version),
    extrainfo = s(v.extrainfo), hostname = s(v.hostname), ostype = s(v.ostype),
    devicetype = s(v.devicetype), service_fp = s(v.service_fp),
    service_tunnel = s(tunnel), cpe = cpe,
  })
end

nmap.port_is_excluded = function(number, protocol)
  number = math.tointeger(tonumber(number))
  if not PROTOS[protocol] then error("bad argument #2 (invalid option '" .. tostring(protocol) .. "')", 2) end
  return P.port_is_excluded(number, protocol)
end

nmap.clock_ms = function() return P.clock_ms() end
nmap.clock = function() return P.clock() end
nmap.log_write = function(where, msg)
  if where ~= "stdout" and where ~= "stderr" then
    error("bad argument #1 (invalid option '" .. tostring(where) .. "')", 2)
  end
  P.log(where, "NSE: " .. tostring(msg) .. "\n")
end

nmap.new_try = function(handler)
  return function(status, ...)
    if status == nil or status == false then
      if handler ~= nil then handler() end
      error({ errtype = "nmap.new_try", message = (...) }, 0)
    end
    if type(status) ~= "boolean" then
      error("finalizing a non-conforming function that did not first return a boolean")
    end
    return ...
  end
end

local intensity
nmap.version_intensity = function()
  if selected_by_name() then return 9 end
  if intensity == nil then
    local args = nmap.registry.args or {}
    intensity = math.tointeger(tonumber(args["script-intensity"])) or C.version_intensity
  end
  return intensity
end
nmap.verbosity = function()
  return C.verbosity + (selected_by_name() and 1 or 0)
end
nmap.debugging = function() return C.debugging end
nmap.have_ssl = function() return P.have_ssl end
nmap.fetchfile = function(name) return P.fetchfile(tostring(name)) end
nmap.timing_level = function() return C.timing_level end
nmap.add_targets = function(...)
  if select("#", ...) == 0 then return 0 end
  return 0, "adding targets from scripts is not supported by Portolan yet"
end
nmap.new_targets_num = function() return 0 end
nmap.get_dns_servers = function() return P.dns_servers() end
nmap.is_privileged = function() return C.privileged end
nmap.resolve = function(name, family) return P.resolve(tostring(name), family) end
nmap.address_family = function() return C.address_family end
nmap.get_interface = function() return C.interface end
nmap.list_interfaces = function() return P.list_interfaces() end
nmap.get_ttl = function() return C.ttl end
nmap.get_payload_length = function() return 0 end
nmap.get_random_bytes = function(n) return P.random_bytes(math.tointeger(tonumber(n)) or 0) end
nmap.registry = {}

-- nmap.mutex(object): one lock per object, FIFO, freed when the holder ends.
local mutexes = setmetatable({}, { __mode = "k" })
nmap.mutex = function(object)
  local t = type(object)
  if t == "nil" or t == "boolean" or t == "number" then
    error("bad argument #1 to 'mutex' (object expected)", 2)
  end
  local m = mutexes[object]
  if m then return m end
  local waiting, holder, key = {}, nil, {}
  local done
  local function mutex(op)
    if op == "lock" then
      local co = running()
      if holder == nil then
        holder = co
        nse_destructor("add", co, key, done)
        return
      end
      waiting[#waiting + 1] = co
      return nse_yield()
    elseif op == "done" then
      local co = running()
      if not rawequal(co, holder) then error("do not have a lock on this mutex", 2) end
      nse_destructor("remove", co, key)
      holder = remove(waiting, 1)
      if holder then
        nse_destructor("add", holder, key, done)
        nse_restore(holder)
      end
    elseif op == "trylock" then
      if holder == nil then
        holder = running()
        nse_destructor("add", holder, key, done)
        return true
      end
      return false
    elseif op == "running" then
      return holder
    else
      error("bad argument #1 (invalid option '" .. tostring(op) .. "')", 2)
    end
  end
  -- The destructor runs when a holder ends without unlocking.
  done = function(co)
    if rawequal(co, holder) then
      holder = remove(waiting, 1)
      if holder then
        nse_destructor("add", holder, key, done)
        nse_restore(holder)
      end
    end
  end
  mutexes[object] = mutex
  return mutex
end

-- nmap.condvar(object): wait / signal / broadcast.
local condvars = setmetatable({}, { __mode = "k" })
nmap.condvar = function(object)
  local t = type(object)
  if t == "nil" or t == "boolean" or t == "number" then
    error("bad argument #1 to 'condvar' (object expected)", 2)
  end
  local cv = condvars[object]
  if not cv then
    local waiting = {}
    local function wake(n)
      for i = #waiting, n, -1 do
        local co = waiting[i]
        waiting[i] = nil
        if type(co) == "thread" then nse_restore(co) end
      end
    end
    cv = function(op)
      if op == "wait" then
        waiting[#waiting + 1] = running()
        return nse_yield()
      elseif op == "signal" then
        local n = #waiting
        if n == 0 then n = 1 end
        wake(n)
      elseif op == "broadcast" then
        wake(1)
      else
        error("bad argument #1 (invalid option '" .. tostring(op) .. "')", 2)
      end
    end
    condvars[object] = { fn = cv, done = function() wake(1) end }
    cv = condvars[object]
  end
  -- As Nmap: every thread that takes the condvar wakes all waiters when it ends.
  nse_destructor("add", running(), {}, cv.done)
  return cv.fn
end

----------------------------------------------------------------------------------------
-- nmap.socket (nsock)
----------------------------------------------------------------------------------------
local Socket = {}
Socket.__index = Socket
Socket.__name = "nsock"

local DEFAULT_TIMEOUT = 30000

local function check_socket(s)
  if getmetatable(s) ~= Socket then
    error("bad argument #1 (nsock expected, got " .. type(s) .. ")", 3)
  end
  return s
end

-- Start an operation in Rust; it either finishes at once (returns its results) or
-- registers the thread and returns nothing, and the pump restores the thread later.
local function op(s, what, ...)
  local co = running()
  if s.thread ~= nil and s.thread ~= co and what ~= "connect" then
    error("Invalid reuse of a socket from one thread to another.", 3)
  end
  local r = pack(P.start(s.id, co, what, ...))
  if r.n > 0 and r[1] ~= "pending" then
    return unpack(r, 1, r.n)
  end
  s.thread = co
  return nse_yield()
end

local function new_socket(proto, af)
  proto = proto or "tcp"
  if proto ~= "tcp" and proto ~= "udp" then
    error("bad argument #1 to 'new' (invalid option '" .. tostring(proto) .. "')", 2)
  end
  af = af or C.address_family
  if af ~= "inet" and af ~= "inet6" then
    error("bad argument #2 to 'new' (invalid option '" .. tostring(af) .. "')", 2)
  end
  local s = setmetatable({ id = P.socket_new(proto, af), buffer = "", proto = proto }, Socket)
  return s
end

local function target_arg(host)
  if type(host) == "table" then
    return host.ip, host.targetname
  elseif type(host) == "string" then
    return host, nil
  end
  error("bad argument #2 (host table or string expected, got " .. type(host) .. ")", 3)
end

local function port_arg(port)
  if type(port) == "table" then
    return math.tointeger(tonumber(port.number)), port.protocol
  end
  local n = math.tointeger(tonumber(port))
  if n == nil then error("bad argument #3 (port table or number expected, got " .. type(port) .. ")", 3) end
  return n, nil
end

-- nsock's per-thread socket limit (nse_nsock.cc's socket_lock): at most max(20,
-- --max-parallelism) script threads hold open sockets at once; a thread beyond that waits in
-- connect until one of them has none left open.
local THREAD_SOCKETS = setmetatable({}, { __mode = "k" }) -- base thread -> its sockets
local CONNECT_WAITING = setmetatable({}, { __mode = "k" })

local function socket_lock(sock)
  local base = _R.NSE_BASE and _R.NSE_BASE()
  if base == nil then return true end
  local mine = THREAD_SOCKETS[base]
  if mine then
    mine[sock] = true
    return true
  end
  local holders = 0
  for _ in pairs(THREAD_SOCKETS) do holders = holders + 1 end
  if holders <= C.socket_threads then
    THREAD_SOCKETS[base] = setmetatable({ [sock] = true }, { __mode = "k" })
    return true
  end
  CONNECT_WAITING[base] = true
  return false
end

-- Run by every event pump: a thread that ended, or whose sockets are all closed, gives its
-- place up (its sockets are closed), and the threads waiting to connect may try again.
local function socket_unlock()
  for base, sockets in pairs(THREAD_SOCKETS) do
    local open = 0
    if coroutine.status(base) == "suspended" then
      for s in pairs(sockets) do
        if P.socket_open(s.id) then open = open + 1 end
      end
    end
    if open == 0 then
      for s in pairs(sockets) do P.socket_close(s.id) end
      THREAD_SOCKETS[base] = nil
      for waiting in pairs(CONNECT_WAITING) do
        CONNECT_WAITING[waiting] = nil
        nse_restore(waiting)
      end
    end
  end
end

function Socket:connect(host, port, protocol)
  check_socket(self)
  while not socket_lock(self) do
    nse_yield()
  end
  local addr, name = target_arg(host)
  local number, default = port_arg(port)
  protocol = protocol or default or self.proto
  if protocol ~= "tcp" and protocol ~= "udp" and protocol ~= "ssl" then
    error("bad argument #4 to 'connect' (invalid option '" .. tostring(protocol) .. "')", 2)
  end
  if protocol ~= "ssl" then self.proto = protocol end
  self.buffer = ""
  self.thread = nil
  local r = pack(op(self, "connect", addr, name, number, protocol))
  self.thread = nil -- after a connect the socket may move to another thread, as nsock allows
  return unpack(r, 1, r.n)
end
function Socket:reconnect_ssl() check_socket(self); return op(self, "reconnect_ssl") end
function Socket:send(data) check_socket(self); return op(self, "send", tostring(data)) end
function Socket:sendto(host, port, data)
  check_socket(self)
  local addr = target_arg(host)
  local number = port_arg(port)
  return op(self, "sendto", addr, number, tostring(data))
end
function Socket:receive() check_socket(self); return op(self, "receive") end
function Socket:receive_lines(n)
  check_socket(self)
  n = math.tointeger(tonumber(n)); if n == nil then error("bad argument #2 (number expected)", 2) end
  return op(self, "receive_lines", n)
end
function Socket:receive_bytes(n)
  check_socket(self)
  n = math.tointeger(tonumber(n)); if n == nil then error("bad argument #2 (number expected)", 2) end
  return op(self, "receive_bytes", n)
end
function Socket:receive_buf(delim, keeppattern)
  check_socket(self)
  if type(delim) ~= "function" and type(delim) ~= "string" then
    error("bad argument #2 (function/string expected, got " .. type(delim) .. ")", 2)
  end
  if type(keeppattern) ~= "boolean" then
    error("bad argument #3 (boolean expected, got " .. type(keeppattern) .. ")", 2)
  end
  while true do
    local l, r
    if type(delim) == "function" then
      l, r = delim(self.buffer)
    else
      l, r = string.find(self.buffer, delim)
    end
    if math.type(l) ~= nil and math.type(r) ~= nil then
      l, r = math.tointeger(l), math.tointeger(r)
      if l > r or r > #self.buffer then error("invalid indices for match", 2) end
      local out
      if keeppattern then out = self.buffer:sub(1, r) else out = self.buffer:sub(1, l - 1) end
      self.buffer = self.buffer:sub(r + 1)
      return true, out
    end
    local ok, data = op(self, "receive")
    if not ok then return ok, data end
    self.buffer = self.buffer .. data
  end
end
function Socket:get_info() check_socket(self); return P.socket_info(self.id) end
function Socket:set_timeout(ms)
  check_socket(self)
  ms = math.tointeger(tonumber(ms))
  if ms == nil then error("bad argument #2 (number expected)", 2) end
  if ms < -1 then error("Negative timeout: " .. ms, 2) end
  P.socket_timeout(self.id, ms)
  return true
end
function Socket:bind(addr, port)
  check_socket(self)
  return P.socket_bind(self.id, addr, math.tointeger(tonumber(port)))
end
function Socket:close()
  check_socket(self)
  self.thread = nil
  self.buffer = ""
  return P.socket_close(self.id)
end
function Socket:get_ssl_certificate()
  check_socket(self)
  return P.socket_certificate(self.id)
end
local function no_pcap()
  error("raw packet capture (pcap) is not supported by Portolan's script engine yet", 2)
end
Socket.pcap_open = no_pcap
Socket.pcap_receive = no_pcap
Socket.pcap_close = no_pcap
Socket.__gc = function(self) P.socket_forget(self.id) end

local socket = {}
socket.new = new_socket
socket.loop = function(ms)
  socket_unlock()
  P.pump(math.tointeger(tonumber(ms)) or 0)
end
socket.sleep = function(secs)
  secs = tonumber(secs)
  if secs == nil then error("bad argument #1 to 'sleep' (number expected)", 2) end
  if secs < 0 then error(("argument to sleep (%f) must not be negative\n"):format(secs), 2) end
  local co = running()
  local id = P.sleep(co, math.floor(secs * 1000 + 0.5))
  nse_destructor("add", co, id, function() P.cancel_sleep(id) end)
  return nse_yield()
end
socket.get_stats = function() return { connect_attempts = 0 } end
nmap.new_socket = new_socket
nmap.socket = socket

----------------------------------------------------------------------------------------
-- nmap.dnet: raw packets are not offered to scripts yet; such scripts fail alone.
----------------------------------------------------------------------------------------
local dnet = {}
local function no_dnet()
  error("raw packets (nmap.new_dnet) are not supported by Portolan's script engine yet", 2)
end
dnet.new = no_dnet
dnet.get_interface_info = function(_) return nil, "interface information is not available" end
nmap.new_dnet = no_dnet
nmap.get_interface_info = dnet.get_interface_info
nmap.dnet = dnet

----------------------------------------------------------------------------------------
-- lfs: the functions Nmap's nse_lfs.cc registers.
----------------------------------------------------------------------------------------
local lfs = {
  dir = function(path)
    local names, err = P.dir(tostring(path))
    if not names then error(err, 2) end
    local i = 0
    return function() i = i + 1; return names[i] end
  end,
  link = function(old, new, symbolic) return P.link(tostring(old), tostring(new), symbolic and true or false) end,
  mkdir = function(path) return P.mkdir(tostring(path)) end,
  rmdir = function(path) return P.rmdir(tostring(path)) end,
  get_path_separator = function() return "/" end,
  _VERSION = "LuaFileSystem 1.5.0",
}

-- Called by the engine for each host group.
local function set_current(hosts)
  CURRENT = {}
  for _, h in ipairs(hosts) do
    if h.targetname and h.targetname ~= "" then CURRENT[h.targetname] = h._Target end
    CURRENT[h.ip] = h._Target
  end
end

return nmap, socket, dnet, lfs, cnse, set_current
