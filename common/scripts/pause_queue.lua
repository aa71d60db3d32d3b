-- pause_queue: workers stop taking jobs from a queue that exists; never creates one.
-- KEYS[1] queues  KEYS[2] paused
-- ARGV[1] prefix  ARGV[2] queue name  ARGV[3] configured (1|0: in QUEUES, so it exists)
-- Returns 1 | 0 (no such queue: nothing written)
-- One script, not a check and then SADD: a delete_queue between the two would leave the flag
-- of a queue that no longer exists.
if ARGV[3] ~= '1' and redis.call('SISMEMBER', KEY_queues, ARGV[2]) == 0 then return 0 end
redis.call('SADD', KEY_paused, ARGV[2])
return 1
