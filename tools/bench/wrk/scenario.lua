-- One script for every scenario; the first argument names it.
--   get <path>                      the same GET again and again
--   lend <first> <per_thread>       POST /lendBook/: patron<k> borrows book k+5, a fresh k each time
--   return <first> <per_thread>     POST /returnBook/ of loans made beforehand, same numbering
--   cycle <first> <per_thread>      lend a fresh book, return it once the lend answered 201
--   loans <prefix> <lo> <hi>        GET /loans/?user_email=<prefix><random k in lo..hi>@example.com
-- Every thread gets its own block of <per_thread> numbers, so no two requests share a book.
-- An optional `Authorization` header comes from the environment variable BENCH_AUTH.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local headers = {["Content-Type"] = "application/json"}
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then headers["Authorization"] = auth end

local mode, path, n, last, prefix, lo, hi
local to_return = {}
cycles = 0

local function body(k)
  return string.format('{"user_email":"patron%d@example.com","book_id":%d}', k, k + 5)
end

local function fresh()
  local k = n
  n = n + 1
  if n >= last then n = last - 1 end
  return k
end

function init(args)
  mode = args[1]
  if mode ~= "cycle" then response = nil end  -- wrk then skips reading bodies
  if mode == "get" then
    path = args[2]
  elseif mode == "loans" then
    prefix, lo, hi = args[2], tonumber(args[3]), tonumber(args[4])
    math.randomseed(os.time() + tid * 7919)
  else
    local per = tonumber(args[3])
    n = tonumber(args[2]) + tid * per
    last = n + per
  end
end

function request()
  if mode == "get" then
    return wrk.format("GET", path, headers)
  elseif mode == "lend" then
    return wrk.format("POST", "/lendBook/", headers, body(fresh()))
  elseif mode == "return" then
    return wrk.format("POST", "/returnBook/", headers, body(fresh()))
  elseif mode == "cycle" then
    local k = table.remove(to_return)
    if k then
      return wrk.format("POST", "/returnBook/", headers, body(k))
    end
    return wrk.format("POST", "/lendBook/", headers, body(fresh()))
  elseif mode == "loans" then
    local k = math.random(lo, hi)
    return wrk.format("GET", string.format("/loans/?user_email=%s%d%%40example.com", prefix, k), headers)
  end
end

function response(status, hdrs, resp_body)
  if mode ~= "cycle" then return end
  if status == 201 then
    local k = resp_body:match('"user_email":%s*"patron(%d+)@')
    if k then table.insert(to_return, tonumber(k)) end
  elseif status == 200 then
    cycles = cycles + 1
  end
end

function done(summary, latency, requests)
  local total_cycles = 0
  for _, t in ipairs(threads) do total_cycles = total_cycles + (t:get("cycles") or 0) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
    .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},"cycles":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    total_cycles))
end
