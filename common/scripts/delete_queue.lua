-- delete_queue: forget an empty queue: its name, paused flag, limits, job types, and every stats
-- and in-flight field of it. Refused while it holds a job (pending, scheduled, processing, failed, waiting).
-- KEYS[1] queues  KEYS[2] paused  KEYS[3] stats  KEYS[4] inflight  KEYS[5] queue:<queue>
-- KEYS[6] scheduled:<queue>  KEYS[7] dead:<queue>  KEYS[8] types:<queue>
-- ARGV[1] prefix  ARGV[2] queue name  ARGV[3] configured (1|0)  ARGV[4] counters (comma list)
-- Returns {"ok"} | {"not_found"} | {"not_empty", what}
local queue = ARGV[2]
if ARGV[3] ~= '1' and redis.call('SISMEMBER', KEY_queues, queue) == 0 then return {'not_found'} end
if pending_depth(queue) > 0 then return {'not_empty', 'pending'} end
if redis.call('ZCARD', KEY_scheduled) > 0 then return {'not_empty', 'scheduled'} end
if redis.call('ZCARD', key_awaiting(queue)) > 0 then return {'not_empty', 'waiting'} end
if (tonumber(redis.call('HGET', KEY_inflight, queue)) or 0) > 0 then
  return {'not_empty', 'processing'}
end
if redis.call('ZCARD', KEY_dead) > 0 then return {'not_empty', 'failed'} end
-- The stats fields of this queue, as the scripts write them (see common/metrics.py).
local fields = {'wait_sum_ms|' .. queue, 'run_sum_ms|' .. queue}
for i = 1, #BUCKETS_MS + 1 do
  fields[#fields + 1] = 'wait|' .. queue .. '|' .. i
  fields[#fields + 1] = 'run|' .. queue .. '|' .. i
end
for _, job_type in ipairs(redis.call('SMEMBERS', KEY_types)) do
  for counter in string.gmatch(ARGV[4], '[^,]+') do
    fields[#fields + 1] = counter .. '|' .. queue .. '|' .. job_type
  end
end
redis.call('HDEL', KEY_stats, unpack(fields))
redis.call('HDEL', KEY_inflight, queue)
redis.call('SREM', KEY_queues, queue)
redis.call('SREM', KEY_paused, queue)
-- The list may still hold a WAKE (no job) and the ZSET nothing: both go.
redis.call('DEL', KEY_types, key_limits(queue), key_groups(queue), KEY_queue,
  key_priority(queue))
return {'ok'}
