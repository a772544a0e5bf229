-- POST /api/v1/cards/{id}/usage on a random card of a random tenant. Half the reports
-- repeat the seeded (bench-repeat, seed) run on one of the first REPEAT_POOL cards; the
-- other half are new runs (as in bench/pgbench/usage.sql).   ARG: REPEAT_POOL
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local REPEAT = '{"workflow_id": "bench-repeat", "run_id": "seed"}'
local pool

function setup(thread) common.setup(thread) end
function done(summary, latency, requests) common.done(summary, latency, requests) end

function init(args)
  common.init(args, true)
  pool = tonumber(args[3] or "1000")
end

function request()
  local tenant = common.tenant()
  local id, body
  if math.random(2) == 1 then
    id = tenant.ids[math.random(math.min(pool, #tenant.ids))]
    body = REPEAT
  else
    id = tenant.ids[math.random(#tenant.ids)]
    body = '{"workflow_id": "bench", "run_id": "wrk-' .. common.unique() .. '"}'
  end
  return common.post("/api/v1/cards/" .. id .. "/usage", tenant, body)
end
