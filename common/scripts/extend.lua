-- extend: a leased job's expiry moves to now + lease_s while its lease holds (status
-- processing, lease number and nonce both its current ones, not yet expired); the reclaim
-- deadline and the consumer's heartbeat follow, and a progress value is stored when given. A
-- stale, unknown or expired lease changes nothing but the stale_completions counter.
-- KEYS[1] job:<job_id>  KEYS[2] deadlines  KEYS[3] stats  KEYS[4] workers
-- (the consumer's info hash: key_worker(holder))
-- ARGV[1] prefix  ARGV[2] job id  ARGV[3] lease number  ARGV[4] nonce  ARGV[5] lease ms
-- ARGV[6] reclaim margin ms (the sweeper's)  ARGV[7] worker info ttl ms
-- ARGV[8] progress JSON ('' for none)
-- Returns {"ok", expires_at ms, cancel requested (1|0)} | {"lease_lost", status or ''}
local v = redis.call('HMGET', KEY_job, 'status', 'lease', 'lease_nonce', 'lease_expires_at',
  'worker', 'cancel_requested')
local now = now_ms()
if not SOURCES[v[1]] or v[2] ~= ARGV[3] or v[3] ~= ARGV[4]
    or (tonumber(v[4]) or 0) < now then
  redis.call('HINCRBY', KEY_stats, 'stale_completions', 1)
  return {'lease_lost', v[1] or ''}
end
local expires = now + tonumber(ARGV[5])
redis.call('HSET', KEY_job, 'lease_expires_at', expires)
if ARGV[8] ~= '' then
  redis.call('HSET', KEY_job, 'progress', ARGV[8])
  progress_event(KEY_job, now, ARGV[8])  -- at most one a second (_events.lua)
end
redis.call('ZADD', KEY_deadlines, expires - tonumber(ARGV[6]), ARGV[2])
local worker = v[5]
redis.call('ZADD', KEY_workers, 'GT', expires, worker)
local info = key_worker(worker)
if redis.call('EXISTS', info) == 1 then
  redis.call('HSET', info, 'last_heartbeat', now)
  local keep = tonumber(ARGV[5]) + tonumber(ARGV[7])
  if redis.call('PTTL', info) < keep then redis.call('PEXPIRE', info, keep) end
end
local cancel = 0
if v[6] == '1' then cancel = 1 end
return {'ok', expires, cancel}
