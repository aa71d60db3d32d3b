-- start_job(id, worker, now, reply): shared by claim and start. The id is already in the
-- worker's processing list. Appends id, type, queue, payload, attempts, max_attempts,
-- timeout_ms, lease, created_at to reply and returns true; drops ids no longer pending.
local function start_job(id, worker, now, reply)
  local job = load(id)
  if not job or job.status ~= ST.pending then
    -- Cancelled (or deleted) after it was queued: nothing to run.
    redis.call('LREM', P .. 'processing:' .. worker, 1, id)
    return false
  end
  local key = P .. 'job:' .. id
  local attempts = redis.call('HINCRBY', key, 'attempts', 1)
  local lease = redis.call('HINCRBY', key, 'lease', 1)
  set_status(job, ST.processing, 'started_at', now, 'worker', worker)
  redis.call('ZADD', P .. 'deadlines', now + tonumber(job.timeout_ms), id)
  redis.call('HINCRBY', P .. 'inflight', job.queue, 1)
  observe('wait', job.queue, now - (tonumber(job.enqueued_at) or now))
  local payload = redis.call('HGET', key, 'payload')
  local n = #reply
  reply[n + 1] = id
  reply[n + 2] = job.type
  reply[n + 3] = job.queue
  reply[n + 4] = payload
  reply[n + 5] = attempts
  reply[n + 6] = job.max_attempts
  reply[n + 7] = job.timeout_ms
  reply[n + 8] = lease
  reply[n + 9] = job.created_at
  return true
end
