-- webhooks.lua: wrk script for scripts/loadtest.sh. Sends pre-built voice webhooks, each once.
--
--   wrk -t T -c C -d D -s webhooks.lua URL -- FILE T NAME
--
-- FILE holds one request per line, "signature<TAB>form body" (express-seed/signmany.js writes it).
-- setup() numbers the threads 0..T-1; thread k sends lines k+1, k+1+T, k+1+2T, … of FILE, so
-- threads never share a line and no CallSid is sent twice. Each thread opens FILE at init and
-- reads it as it goes, one line per request (no copy of the file in memory). A thread that runs
-- out of lines stops (wrk.thread:stop) and counts `exhausted`: the file was too short for the
-- run, and the caller treats that as a failed run (a repeated CallSid writes nothing and would
-- flatter the numbers).
--
-- Every request: POST, Content-Type application/x-www-form-urlencoded, X-Twilio-Signature from
-- the line (servers that do not check it ignore it). At the end one machine-readable line:
--   RESULT name=… rps=… p50_ms=… p99_ms=… max_ms=… errors=… non2xx=… requests=… sent=… exhausted=…
-- errors: socket errors (connect, read, write, timeout); non2xx: wrk's status errors (status >
-- 399); requests: completed responses; sent: requests handed to wrk (completed + those still in
-- flight when wrk stopped).

local threads = {}
local nsetup = 0

-- Runs in wrk's main Lua state, once per thread, before that thread's init.
function setup(thread)
  thread:set("id", nsetup)
  nsetup = nsetup + 1
  table.insert(threads, thread)
end

-- Thread globals, read back by done() with thread:get.
id = id or 0
name = "wrk"
sent = 0
exhausted = 0

local file, nthreads, last
local headers = {}

function init(args)
  local path = args[1]
  nthreads = tonumber(args[2])
  name = args[3] or name
  assert(path and nthreads and nthreads >= 1, "webhooks.lua: usage: wrk … URL -- FILE THREADS [NAME]")
  assert(id < nthreads, string.format("webhooks.lua: thread %d but THREADS=%d: pass wrk's -t as THREADS", id, nthreads))
  file = assert(io.open(path, "r"))
  for _ = 1, id do -- skip to this thread's first line
    file:read("*l")
  end
  headers["Host"] = wrk.headers["Host"]
  headers["Content-Type"] = "application/x-www-form-urlencoded"
end

-- nextline returns this thread's next line, then skips the other threads' lines after it.
local function nextline()
  local line = file:read("*l")
  if line and line ~= "" then
    for _ = 2, nthreads do
      file:read("*l")
    end
    return line
  end
  return nil
end

function request()
  local line = nextline()
  if line then
    sent = sent + 1
    last = line
  else
    -- Out of lines: stop this thread. wrk still wants a request now, so the last one goes
    -- again (its CallSid repeats), counted in `exhausted`.
    exhausted = exhausted + 1
    wrk.thread:stop()
    line = assert(last, "webhooks.lua: no request lines in the file for thread " .. id)
  end
  local tab = assert(string.find(line, "\t", 1, true), "webhooks.lua: line without a TAB")
  headers["X-Twilio-Signature"] = string.sub(line, 1, tab - 1)
  return wrk.format("POST", nil, headers, string.sub(line, tab + 1))
end

-- Runs in wrk's main Lua state.
function done(summary, latency, requests)
  local total_sent, total_exhausted, label = 0, 0, "wrk"
  for _, t in ipairs(threads) do
    total_sent = total_sent + (t:get("sent") or 0)
    total_exhausted = total_exhausted + (t:get("exhausted") or 0)
    label = t:get("name") or label
  end
  -- wrk calls request() once in thread 0 before the run, to check the script: that line is
  -- consumed (so no CallSid repeats) but never sent.
  total_sent = math.max(total_sent - 1, 0)
  local e = summary.errors
  io.write(string.format(
    "RESULT name=%s rps=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f errors=%d non2xx=%d requests=%d sent=%d exhausted=%d\n",
    label, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.timeout, e.status, summary.requests, total_sent, total_exhausted))
end
