-- POST /api/v1/cards/retrieve with 50 random ids of a random tenant (repeats allowed,
-- as in bench/pgbench/retrieve.sql).
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

function setup(thread) common.setup(thread) end
function done(summary, latency, requests) common.done(summary, latency, requests) end

function init(args)
  common.init(args, true)
end

function request()
  local tenant = common.tenant()
  local ids, picked = tenant.ids, {}
  for i = 1, 50 do
    picked[i] = '"' .. ids[math.random(#ids)] .. '"'
  end
  return common.post("/api/v1/cards/retrieve", tenant, '{"ids": [' .. table.concat(picked, ", ") .. "]}")
end
