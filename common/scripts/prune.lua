-- prune: drop index entries of terminal jobs whose records have expired (RESULT_TTL).
-- KEYS[1] expiries  KEYS[2] jobs  KEYS[3..9] status:*  (job hashes: key_job(id))
-- ARGV[1] prefix  ARGV[2] most ids per call
-- Returns the number of due entries handled (a full batch: call again)
-- Inside a script Redis judges expiry by the script's start time, which TIME has already
-- passed: a record due this very millisecond still exists. Such an entry is moved to the
-- record's real expiry rather than dropped (dropping it leaked the job's index entries).
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEY_expiries, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  local ttl = redis.call('PTTL', key_job(id))
  if ttl == -2 then
    purge(id, nil)
  elseif ttl >= 0 then
    redis.call('ZADD', KEY_expiries, now + ttl + 1, id)
  else
    redis.call('ZREM', KEY_expiries, id) -- no longer expiring: it left the terminal states
  end
end
return #due
