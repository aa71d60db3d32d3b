-- dep_settle: the child's half of a dependency across shards (common/outbox.py, _deps.lua): its
-- parent in another shard ended, and the child hears it once however often the hand-off is
-- sent, exactly as it would from a parent in its own shard (released at its last parent, or
-- cancelled parent_failed with its own children following, in this call).
-- KEYS[1] handoff:<key>  KEYS[2] stats  KEYS[3] jobs  KEYS[4..10] status:*
-- ARGV[1] prefix  ARGV[2] the hand-off's key (settle:<parent>><child>)  ARGV[3] body: JSON
-- {parent, child, status (completed | failed | cancelled | gone: its record was missing)}
-- ARGV[4] how long the done mark is kept (ms)
-- Returns {"ok", child, "settled" | "done"}
local body = cjson.decode(ARGV[3])
if redis.call('EXISTS', KEY_handoff) == 1 then
  redis.call('SET', KEY_handoff, '1', 'PX', ARGV[4])
  return {'ok', body.child, 'done'}
end
local now = now_ms()
local ended = settle_walk({body.parent}, {body.status}, now, {body.child})
for i = 1, #ended do on_finished(ended[i], ST.cancelled, now) end
redis.call('SET', KEY_handoff, '1', 'PX', ARGV[4])
return {'ok', body.child, 'settled'}
