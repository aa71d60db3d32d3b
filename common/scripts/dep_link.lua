-- dep_link: the parent's half of a dependency across shards (common/outbox.py, _deps.lua): a
-- child submitted in another shard is registered with its parent here, once however often the
-- hand-off is sent.
-- KEYS[1] handoff:<key>
-- ARGV[1] prefix  ARGV[2] the hand-off's key (link:<parent>><child>)  ARGV[3] body: JSON
-- {parent, child, shard (the child's)}  ARGV[4] how long the done mark is kept (ms)
-- Returns {"ok", child, "linked" | "settled" | "done"}
--
-- A parent not yet ended keeps the child in remote_children:<parent>, and the script that ends
-- it owes the child a settle (_deps.lua settle_walk). A parent that already ended (it may have
-- ended between the child's submission and now) owes the settle here, with its status; a parent
-- whose record is gone (deleted or expired after it ended) counts as failed: `gone`.
local body = cjson.decode(ARGV[3])
local parent, child = body.parent, body.child
if redis.call('EXISTS', KEY_handoff) == 1 then
  redis.call('SET', KEY_handoff, '1', 'PX', ARGV[4])
  return {'ok', child, 'done'}
end
local now = now_ms()
local status = redis.call('HGET', key_job(parent), 'status')
local outcome
if status == ST.completed or status == ST.failed or status == ST.cancelled or not status then
  owe_settle(body.shard, parent, child, status or 'gone', now)
  outcome = 'settled'
else
  redis.call('HSET', key_remote_children(parent), child, body.shard)
  redis.call('HSET', key_job(parent), 'finish', '1')
  outcome = 'linked'
end
if status then show_children(parent, {child}) end
redis.call('SET', KEY_handoff, '1', 'PX', ARGV[4])
return {'ok', child, outcome}
