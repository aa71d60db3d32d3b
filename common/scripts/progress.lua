-- progress: stores a running job's progress (JSON the caller bounded) while its lease holds;
-- changes no state. The reply carries the cancel request, so reporting progress is also a
-- handler's cancel checkpoint, at no extra round trip.
-- KEYS[1] job:<job_id>
-- ARGV[1] prefix  ARGV[2] lease  ARGV[3] progress JSON
-- Returns {"ok", cancel requested (1|0)} | {"stale_lease", status or ''}
local v = redis.call('HMGET', KEY_job, 'status', 'lease', 'cancel_requested')
if v[1] ~= ST.processing or v[2] ~= ARGV[2] then
  -- Never written outside the run that owns it: a late call must not recreate an expired hash.
  return {'stale_lease', v[1] or ''}
end
redis.call('HSET', KEY_job, 'progress', ARGV[3])
progress_event(KEY_job, now_ms(), ARGV[3])  -- at most one a second (_events.lua)
if v[3] == '1' then return {'ok', 1} end
return {'ok', 0}
