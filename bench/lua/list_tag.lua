-- GET /api/v1/cards?tag=topic-NNN: the first page of a random tenant's cards with one random
-- topic tag (as bench/pgbench/list_tag.sql). ARG: the number of topics.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

common.listing("TOPICS", function(topics)
  return string.format("/api/v1/cards?tag=topic-%03d", math.random(0, topics - 1))
end)
