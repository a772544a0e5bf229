-- GET /api/v1/cards?contains={"n":N}: the first page of a random tenant's cards whose metadata
-- contains a random card number (as bench/pgbench/list_contains.sql). ARG: cards per tenant.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

common.listing("CARDS_PER_TENANT", function(per_tenant)
  -- {"n":N}, percent-encoded
  return "/api/v1/cards?contains=%7B%22n%22%3A" .. math.random(per_tenant) .. "%7D"
end)
