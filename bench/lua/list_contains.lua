-- GET /api/v1/cards?contains={"n":N}: the first page of a random tenant's cards whose metadata
-- contains a random card number (as bench/pgbench/list_contains.sql). ARG: cards per tenant.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

function setup(thread) common.setup(thread) end
function done(summary, latency, requests) common.done(summary, latency, requests) end

local per_tenant

function init(args)
  common.init(args, false)
  per_tenant = assert(tonumber(args[3]), "usage: -- WORK_DIR TOKEN CARDS_PER_TENANT")
end

function request()
  -- {"n":N}, percent-encoded
  return common.get("/api/v1/cards?contains=%7B%22n%22%3A" .. math.random(per_tenant) .. "%7D", common.tenant())
end
