-- heartbeat: a worker says it is alive; its score is Redis server time, never a host clock.
-- KEYS[1] workers  KEYS[2] worker:<worker_id>
-- ARGV[1] prefix  ARGV[2] worker id  ARGV[3] info ttl (ms)  ARGV[4] host  ARGV[5] pid
-- ARGV[6] queues (comma list)  ARGV[7] slots total  ARGV[8] slots busy
-- ARGV[9] handler types (comma list, bounded by the store)
-- Returns the server time in ms
local now = now_ms()
local info = KEY_worker
redis.call('ZADD', KEY_workers, now, ARGV[2])
redis.call('HSETNX', info, 'started_at', now)
redis.call('HSET', info, 'id', ARGV[2], 'host', ARGV[4], 'pid', ARGV[5], 'queues', ARGV[6],
  'slots_total', ARGV[7], 'slots_busy', ARGV[8], 'handlers', ARGV[9], 'last_heartbeat', now)
redis.call('PEXPIRE', info, tonumber(ARGV[3]))
return now
