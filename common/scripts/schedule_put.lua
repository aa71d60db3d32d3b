-- schedule_put: create or replace a schedule (also pause and resume), at most MAX_SCHEDULES.
-- KEYS[1] schedules  KEYS[2] schedules_due  (the schedule's hash: key_schedule(ARGV[2]))
-- ARGV[1] prefix  ARGV[2] schedule id  ARGV[3] max schedules  ARGV[4] revision expected ('' any)
-- ARGV[5] definition JSON  ARGV[6] timing (what the run times follow: cron, timezone, every)
-- ARGV[7] paused (1|0)  ARGV[8] next run (ms), computed in Python from the clock ARGV[9] (ms)
-- Returns {"ok", created (1|0), revision, next run ms ('' when paused)}
--   | {"too_many_schedules"} | {"conflict", revision now}
local key = key_schedule(ARGV[2])
local old = redis.call('HMGET', key, 'revision', 'timing', 'paused', 'next_run_at')
local exists = old[1] ~= false
-- pause and resume read, change and write back: a PUT in between must not be overwritten.
if ARGV[4] ~= '' and (old[1] or '') ~= ARGV[4] then return {'conflict', old[1] or ''} end
if not exists and redis.call('ZCARD', KEY_schedules) >= tonumber(ARGV[3]) then
  return {'too_many_schedules'}
end
local paused = ARGV[7] == '1'
local next_run = ''
if not paused then
  next_run = ARGV[8]
  -- The same timing sent again (a replayed PUT, a changed template) keeps the run already
  -- due, so an update neither skips nor repeats it; a resume or a new timing starts afresh.
  local stored = tonumber(old[4])
  if exists and old[2] == ARGV[6] and old[3] == '0' and stored and stored >= tonumber(ARGV[9]) then
    next_run = old[4]
  end
end
local now = now_ms()
if not exists then
  -- Revisions start at the server time in microseconds, so a schedule deleted and made again
  -- never reuses one: a firer holding a read of the old one cannot fire the new one.
  local t = redis.call('TIME')
  redis.call('HSET', key, 'revision', t[1] .. string.format('%06d', tonumber(t[2])))
end
local revision = redis.call('HINCRBY', key, 'revision', 1)
redis.call('HSET', key, 'id', ARGV[2], 'definition', ARGV[5], 'timing', ARGV[6],
  'paused', paused and '1' or '0', 'next_run_at', next_run, 'updated_at', now)
if not exists then redis.call('HSET', key, 'created_at', now) end
redis.call('ZADD', KEY_schedules, 0, ARGV[2])
if paused then
  redis.call('ZREM', KEY_schedules_due, ARGV[2])
else
  redis.call('ZADD', KEY_schedules_due, next_run, ARGV[2])
end
return {'ok', exists and 0 or 1, revision, next_run}
