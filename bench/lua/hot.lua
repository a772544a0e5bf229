-- POST /api/v1/cards/{id}/usage on one hot card (tenant 1's first) from every connection,
-- with usage.lua's mix: half repeats of the seeded run, half new runs.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local REPEAT = '{"workflow_id": "bench-repeat", "run_id": "seed"}'
local tenant, path

function setup(thread) common.setup(thread) end
function done(summary, latency, requests) common.done(summary, latency, requests) end

function init(args)
  common.init(args, true)
  for _, t in ipairs(common.tenants) do
    if t.no == 1 then tenant = t end
  end
  path = "/api/v1/cards/" .. tenant.ids[1] .. "/usage"
end

function request()
  local body = REPEAT
  if math.random(2) == 1 then
    body = '{"workflow_id": "bench", "run_id": "wrk-' .. common.unique() .. '"}'
  end
  return common.post(path, tenant, body)
end
