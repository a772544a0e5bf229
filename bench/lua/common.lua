-- Shared by the wrk scripts of bench/lua: loads what the harness wrote into its work
-- folder (tenants.tsv, ids-<tenant_no>.txt), picks tenants and cards, and prints the
-- run's numbers as one JSON line that bench/run.py reads.
--
-- Every script is started as:  wrk ... -s bench/lua/<op>.lua URL -- WORK_DIR TOKEN [ARG]
-- TOKEN is unique per run, so idempotency keys, titles and run ids never collide.
local M = {}

M.dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"

local function lines(path)
  local out = {}
  for line in io.lines(path) do
    if line ~= "" then out[#out + 1] = line end
  end
  return out
end

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local thread_no = 0

-- setup() runs in wrk's main state once per thread: number the threads.
function M.setup(thread)
  thread_no = thread_no + 1
  thread:set("tid", thread_no)
end

-- init() runs in each thread's own state: load the tenants (and their ids if asked).
function M.init(args, with_ids)
  M.work, M.token = args[1], args[2]
  assert(M.work and M.token, "usage: -- WORK_DIR TOKEN [ARG]")
  M.tid = tid or 0
  M.counter = 0
  math.randomseed(os.time() + M.tid * 7919)
  M.tenants = {}
  for _, line in ipairs(lines(M.work .. "/tenants.tsv")) do
    local no, tenant_id, key = line:match("^(%d+)\t(%S+)\t(%S+)$")
    local tenant = {no = tonumber(no), id = tenant_id, auth = "Bearer " .. key}
    if with_ids then tenant.ids = lines(M.work .. "/ids-" .. no .. ".txt") end
    M.tenants[#M.tenants + 1] = tenant
  end
  assert(#M.tenants > 0, "no tenants in " .. M.work)
end

function M.tenant()
  return M.tenants[math.random(#M.tenants)]
end

-- A string unique to this request across threads and runs.
function M.unique()
  M.counter = M.counter + 1
  return M.token .. "-" .. M.tid .. "-" .. M.counter
end

function M.post(path, tenant, body, extra)
  local headers = {["Authorization"] = tenant.auth, ["Content-Type"] = "application/json"}
  if extra then
    for k, v in pairs(extra) do headers[k] = v end
  end
  return wrk.format("POST", path, headers, body)
end

function M.get(path, tenant)
  return wrk.format("GET", path, {["Authorization"] = tenant.auth})
end

-- A whole listing script: GET path(n) for a random tenant, where n is the number given as
-- ARG (`what` names it in the usage message).
function M.listing(what, path)
  local n
  function setup(thread) M.setup(thread) end
  function done(summary, latency, requests) M.done(summary, latency, requests) end
  function init(args)
    M.init(args, false)
    n = assert(tonumber(args[3]), "usage: -- WORK_DIR TOKEN " .. what)
  end
  function request() return M.get(path(n), M.tenant()) end
end

-- done() runs once in the main state. wrk counts a status >= 400 as errors.status; these
-- routes answer no 1xx or 3xx, so that is the non-2xx count.
function M.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "mean_us": %.1f, "p50_us": %d, ' ..
    '"p95_us": %d, "p99_us": %d, "max_us": %d, "non_2xx": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, summary.bytes, latency.mean, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), latency.max, e.status, e.connect,
    e.read, e.write, e.timeout))
end

return M
