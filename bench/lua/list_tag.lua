-- GET /api/v1/cards?tag=topic-NNN: the first page of a random tenant's cards with one random
-- topic tag (as bench/pgbench/list_tag.sql). ARG: the number of topics.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

function setup(thread) common.setup(thread) end
function done(summary, latency, requests) common.done(summary, latency, requests) end

local topics

function init(args)
  common.init(args, false)
  topics = assert(tonumber(args[3]), "usage: -- WORK_DIR TOKEN TOPICS")
end

function request()
  return common.get(string.format("/api/v1/cards?tag=topic-%03d", math.random(0, topics - 1)), common.tenant())
end
