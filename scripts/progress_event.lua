-- wrk script for scripts/load.sh: POSTs progress events to the engine (or
-- the bare baseline) and prints throughput and latency percentiles.
--
-- Environment:
--   ACHV_KEY          integration key (any non-empty value for the baseline)
--   ACHV_ACHIEVEMENT  achievement id (default 4)
--   ACHV_MODE         single (default) | batch
--   ACHV_EVENT_IDS    1: every single event carries a unique eventId
--   ACHV_CUSTOMERS    customers the events are spread over (default 100000)
--   ACHV_BATCH        events per batch in batch mode (default 1000)

local key = os.getenv("ACHV_KEY") or "load-key"
local achievement = tonumber(os.getenv("ACHV_ACHIEVEMENT") or "4")
local mode = os.getenv("ACHV_MODE") or "single"
local event_ids = os.getenv("ACHV_EVENT_IDS") == "1"
local customers = tonumber(os.getenv("ACHV_CUSTOMERS") or "100000")
local batch_size = tonumber(os.getenv("ACHV_BATCH") or "1000")

local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
end

local n = 0
local run = tostring(os.time())
local bodies = {}
local path = "/v1/progress_events"

local function event(c, id)
  if id then
    return string.format(
      '{"integrationId":"customer-%06d","achievementId":%d,"delta":1,"eventId":"%s"}',
      c, achievement, id)
  end
  return string.format('{"integrationId":"customer-%06d","achievementId":%d,"delta":1}',
    c, achievement)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Authorization"] = "ApiKey-v1 " .. key
  wrk.headers["Content-Type"] = "application/json"
  n = (tid or 1) * 104729
  if mode == "batch" then
    -- Built once: enough batches to cover every customer once.
    path = "/v1/progress_events/batch?results=none"
    local count = math.max(1, math.floor(customers / batch_size))
    for b = 0, count - 1 do
      local parts = {}
      for i = 0, batch_size - 1 do
        parts[#parts + 1] = event((i * count + b) % customers, nil)
      end
      bodies[#bodies + 1] = '{"events":[' .. table.concat(parts, ",") .. ']}'
    end
  end
end

function request()
  n = n + 1
  if mode == "batch" then
    return wrk.format(nil, path, nil, bodies[(n % #bodies) + 1])
  end
  local c = (n * 7919) % customers
  local id = nil
  if event_ids then
    id = string.format("w%s-%d-%d", run, tid or 1, n)
  end
  return wrk.format(nil, path, nil, event(c, id))
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local rps = summary.requests / secs
  local e = summary.errors
  io.write("---- load summary ----\n")
  io.write(string.format("mode: %s%s\n", mode, event_ids and " (unique eventIds)" or ""))
  io.write(string.format("requests: %d in %.2f s = %.0f req/s\n", summary.requests, secs, rps))
  if mode == "batch" then
    io.write(string.format("events/s: %.0f (%d events per batch)\n", rps * batch_size, batch_size))
  end
  io.write(string.format("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    latency.max / 1000, latency.mean / 1000))
  io.write(string.format("errors: connect %d, read %d, write %d, non-2xx %d, timeout %d\n",
    e.connect, e.read, e.write, e.status, e.timeout))
end
