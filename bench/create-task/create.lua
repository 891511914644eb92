-- wrk script of the create-task benchmark: every request is POST /api/<user>/tasks with a bearer
-- token and a realistic JSON body (numbered title, description, priority, due_at,
-- remind_before_minutes). done() prints req/s, p50/p99 latency and the count of non-2xx
-- responses, plus one machine-readable "BENCH ..." line that run.sh parses.
-- Environment: BENCH_USER (user id), BENCH_TOKEN (its JWT), BENCH_DUE_BASE (unix seconds of the
-- first due_at; default tomorrow).

local user = os.getenv("BENCH_USER") or "bench"
local token = os.getenv("BENCH_TOKEN")
local due_base = tonumber(os.getenv("BENCH_DUE_BASE") or "") or (os.time() + 86400)

local priorities = { "low", "medium", "high", "urgent" }
local reminders = { 10, 30, 60, 1440 }
local description = "Created by the create-task benchmark: check the quarterly figures, "
  .. "write the summary for the team and book the room for the review meeting."

-- Main state: one entry per wrk thread, read back in done().
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

-- Thread state from here on (each wrk thread has its own Lua state and globals).
function init(args)
  counter = 0
  non2xx = 0
  first_bad_status = 0
  path = "/api/" .. user .. "/tasks"
  headers = {
    ["Authorization"] = "Bearer " .. (token or ""),
    ["Content-Type"] = "application/json",
  }
  due = {}
  for d = 0, 27 do
    due[d] = os.date("!%Y-%m-%dT09:00:00Z", due_base + d * 86400)
  end
end

function request()
  counter = counter + 1
  local i = counter % 4 + 1
  local body = string.format(
    '{"title":"Benchmark task %d-%07d","description":"%s","priority":"%s",'
      .. '"due_at":"%s","remind_before_minutes":%d}',
    thread_no, counter, description, priorities[i], due[counter % 28], reminders[i])
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_bad_status == 0 then
      first_bad_status = status
    end
  end
end

function done(summary, latency, requests)
  local bad, first_bad = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
    local s = t:get("first_bad_status") or 0
    if first_bad == 0 and s ~= 0 then
      first_bad = s
    end
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  local seconds = summary.duration / 1e6
  local rps = summary.requests / seconds
  local p50 = latency:percentile(50) / 1000
  local p99 = latency:percentile(99) / 1000
  io.write(string.format("create-task: %d requests in %.2f s: %.1f req/s, latency p50 %.2f ms, "
    .. "p99 %.2f ms, max %.2f ms; non-2xx responses: %d; socket errors: %d "
    .. "(connect %d, read %d, write %d, timeout %d)\n",
    summary.requests, seconds, rps, p50, p99, latency.max / 1000, bad, socket_errors,
    e.connect, e.read, e.write, e.timeout))
  io.write(string.format("BENCH requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f "
    .. "non2xx=%d first_bad_status=%d socket_errors=%d\n",
    summary.requests, seconds, rps, p50, p99, bad, first_bad, socket_errors))
end
