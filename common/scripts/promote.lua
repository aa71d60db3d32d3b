-- promote: scheduled -> pending for every job whose due time has come, in every known queue.
-- KEYS[1] queues  KEYS[2..8] status:*  (each queue's scheduled set and list: key_<name>)
-- ARGV[1] prefix  ARGV[2] most ids to move per queue in this call
-- Returns {promoted, next due ms or -1}
local limit = tonumber(ARGV[2])
local now = now_ms()
local promoted, next_due = 0, -1
for _, queue in ipairs(redis.call('SMEMBERS', KEY_queues)) do
  local zset = key_scheduled(queue)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, limit)) do
    redis.call('ZREM', zset, id)
    local job = load(id)
    if job and SOURCES[job.status] then
      to_pending(job, now, false)
      event(job, 'promoted', now, nil)
      promoted = promoted + 1
    end
  end
  local head = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
  if head[2] then
    local due = tonumber(head[2])
    if next_due < 0 or due < next_due then next_due = due end
  end
end
return {promoted, next_due}
