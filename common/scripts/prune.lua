-- prune: drop index entries of terminal jobs whose records have expired (RESULT_TTL).
-- KEYS[1] expiries
-- ARGV[1] prefix  ARGV[2] most ids per call
-- Returns the number pruned
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  if redis.call('EXISTS', P .. 'job:' .. id) == 0 then
    purge(id, nil)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return #due
