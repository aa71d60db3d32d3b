-- complete: processing -> completed, only for the current lease holder (fencing).
-- KEYS[1] job hash
-- ARGV[1] prefix  ARGV[2] job id  ARGV[3] lease  ARGV[4] result JSON  ARGV[5] result ttl (ms)
-- ARGV[6] calling worker id
-- Returns {"ok"} | {"stale_lease", status} | {"not_found"}
local id, lease, ttl_ms, worker = ARGV[2], ARGV[3], tonumber(ARGV[5]), ARGV[6]
local job = load(id)
if not job then
  redis.call('LREM', P .. 'processing:' .. worker, 1, id)
  return {'not_found'}
end
if job.status == ST.completed and job.lease == lease then
  return {'ok'} -- this very call, sent again after a lost reply
end
if job.status ~= ST.processing or job.lease ~= lease then
  -- A late result from a worker that lost its claim: rejected and counted, never written.
  redis.call('HINCRBY', P .. 'stats', 'stale_completions', 1)
  redis.call('LREM', P .. 'processing:' .. worker, 1, id)
  return {'stale_lease', job.status}
end
local now = now_ms()
leave_processing(job)
set_status(job, ST.completed, 'result', ARGV[4], 'finished_at', now, 'error', '')
observe('run', job.queue, now - (tonumber(job.started_at) or now))
count('completed', job)
expire_terminal(job, now, ttl_ms)
return {'ok'}
