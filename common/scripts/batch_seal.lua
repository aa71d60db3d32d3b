-- batch_seal: an open batch -> sealed (no member may join any more); settled at once when every
-- member has already ended (its callbacks created here, see _batches.lua). Sealing twice is
-- sealing once.
-- KEYS[1] stats  KEYS[2..8] status:*  (the batch: key_batch(id); a callback job: key_job,
-- key_queue)
-- ARGV[1] prefix  ARGV[2] batch id
-- Returns {"ok", state} (sealed | settled) | {"not_found"}
local bid = ARGV[2]
local state = redis.call('HGET', key_batch(bid), 'state')
if not state then return {'not_found'} end
if state == 'open' then
  local now = now_ms()
  redis.call('HSET', key_batch(bid), 'state', 'sealed', 'sealed_at', now)
  state = batch_settle_if_done(bid, now) and 'settled' or 'sealed'
end
return {'ok', state}
