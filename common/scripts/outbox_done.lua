-- outbox_done: removes a performed hand-off from its source shard's outbox (common/outbox.py),
-- or defers a failed one; the mover calls it only after the target shard's script succeeded.
-- KEYS[1] outbox  KEYS[2] outbox_body
-- ARGV[1] prefix  ARGV[2] entry  ARGV[3] 0: remove it | a time (ms): due again then
-- Returns 1 when the entry was there
if ARGV[3] ~= '0' then return redis.call('ZADD', KEY_outbox, 'XX', 'CH', ARGV[3], ARGV[2]) end
redis.call('HDEL', KEY_outbox_body, ARGV[2])
return redis.call('ZREM', KEY_outbox, ARGV[2])
