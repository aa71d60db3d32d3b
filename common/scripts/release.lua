-- release: graceful shutdown. Every id still in the worker's list goes back to the front of its
-- queue without using up an attempt, and the worker deregisters. A job still running in an
-- abandoned thread loses its lease, so its late result is rejected.
-- KEYS[1] processing:<worker>
-- ARGV[1] prefix  ARGV[2] worker id
-- Returns the number of jobs requeued
local worker = ARGV[2]
local now = now_ms()
local requeued = 0
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local job = load(id)
  if job and job.status == ST.processing and job.worker == worker then
    leave_processing(job)
    to_pending(job, now, true, 'attempts', math.max(job.attempts - 1, 0))
    requeued = requeued + 1
  elseif job and job.status == ST.pending then
    redis.call('RPUSH', P .. 'queue:' .. job.queue, id)
    requeued = requeued + 1
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', P .. 'workers', worker)
redis.call('DEL', P .. 'worker:' .. worker)
return requeued
