-- delete_queue: forget an empty queue: its name, paused flag, job types, and every stats and
-- in-flight field of it. Refused while it holds a job (pending, scheduled, processing, failed).
-- KEYS[1] queues  KEYS[2] paused  KEYS[3] stats  KEYS[4] inflight  KEYS[5] queue:<name>
-- KEYS[6] scheduled:<name>  KEYS[7] dead:<name>  KEYS[8] types:<name>
-- ARGV[1] prefix  ARGV[2] queue name  ARGV[3] configured (1|0)  ARGV[4] counters (comma list)
-- Returns {"ok"} | {"not_found"} | {"not_empty", what}
local queue = ARGV[2]
if ARGV[3] ~= '1' and redis.call('SISMEMBER', KEYS[1], queue) == 0 then return {'not_found'} end
if redis.call('LLEN', KEYS[5]) > 0 then return {'not_empty', 'pending'} end
if redis.call('ZCARD', KEYS[6]) > 0 then return {'not_empty', 'scheduled'} end
if (tonumber(redis.call('HGET', KEYS[4], queue)) or 0) > 0 then
  return {'not_empty', 'processing'}
end
if redis.call('ZCARD', KEYS[7]) > 0 then return {'not_empty', 'failed'} end
-- The stats fields of this queue, as the scripts write them (see common/metrics.py).
local fields = {'wait_sum_ms|' .. queue, 'run_sum_ms|' .. queue}
for i = 1, #BUCKETS_MS + 1 do
  fields[#fields + 1] = 'wait|' .. queue .. '|' .. i
  fields[#fields + 1] = 'run|' .. queue .. '|' .. i
end
for _, job_type in ipairs(redis.call('SMEMBERS', KEYS[8])) do
  for counter in string.gmatch(ARGV[4], '[^,]+') do
    fields[#fields + 1] = counter .. '|' .. queue .. '|' .. job_type
  end
end
redis.call('HDEL', KEYS[3], unpack(fields))
redis.call('HDEL', KEYS[4], queue)
redis.call('SREM', KEYS[1], queue)
redis.call('SREM', KEYS[2], queue)
redis.call('DEL', KEYS[8])
return {'ok'}
