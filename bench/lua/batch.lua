-- POST /api/v1/cards/batch with BATCH_SIZE new cards for a random tenant and a fresh
-- Idempotency-Key. Each card is the fixed ~1 KB content of bench/payloads/content-1k.json
-- under a unique title, so nothing deduplicates, with three tags like the loaded cards' (as
-- in bench/pgbench/batch.sql).
-- ARG: BATCH_SIZE (default 100)
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local content, size

function setup(thread) common.setup(thread) end
function done(summary, latency, requests) common.done(summary, latency, requests) end

function init(args)
  common.init(args, false)
  content = common.read(common.dir .. "../payloads/content-1k.json"):gsub("%s+$", "")
  size = tonumber(args[3] or "100")
end

function request()
  local tenant, key, cards = common.tenant(), common.unique(), {}
  for i = 1, size do
    cards[i] = '{"title": "wrk ' .. key .. " " .. i .. '", "tags": ["bench", "batch", "topic-'
      .. string.format("%03d", i % 500) .. '"], "content": ' .. content .. "}"
  end
  local body = '{"cards": [' .. table.concat(cards, ", ") .. "]}"
  return common.post("/api/v1/cards/batch", tenant, body, {["Idempotency-Key"] = key})
end
