-- Hand-offs to another shard (common/outbox.py). A script that owes work in another shard (a
-- schedule's run, a batch's callback, for a queue of a named shard) cannot write there: a
-- script touches one cluster slot. It appends an entry to its own shard's outbox instead, in
-- the same call as the transition that owes it; the mover performs it in the target shard with
-- an idempotent script keyed on `key`, then removes it. Appending the same entry again changes
-- nothing (the body is the same, its due time is kept).
local function owe_handoff(shard, kind, key, body, now)
  local entry = shard .. '|' .. kind .. '|' .. key
  redis.call('HSET', OUTBOX_BODY_KEY, entry, body)
  redis.call('ZADD', OUTBOX_KEY, 'NX', now, entry)
end
