-- lease: pending -> processing for up to N jobs leased to an HTTP consumer until an expiry. The
-- claim path of the Python worker (claim_into, into the consumer's own processing list, lease
-- number + 1), then per job the expiry and a nonce that joins the lease number in the token, and
-- a reclaim deadline set so that the sweeper's reclaim (deadline + margin) takes the job back at
-- the expiry. Then the consumer's heartbeat: its score is the later of now and this expiry, so
-- the sweeper never presumes an idle consumer dead while a lease it holds may still be answered.
-- KEYS[1] processing:<worker_id>  KEYS[2] paused  KEYS[3] stats  KEYS[4] inflight
-- KEYS[5] deadlines  KEYS[6] workers  KEYS[7] worker:<worker_id>  KEYS[8..14] status:*
-- KEYS[15] jobs  KEYS[16..] queue:<queues> (one per name in ARGV[10..])
-- ARGV[1] prefix  ARGV[2] consumer's worker id  ARGV[3] N  ARGV[4] lease ms
-- ARGV[5] reclaim margin ms (the sweeper's)  ARGV[6] worker info ttl ms  ARGV[7] host
-- ARGV[8] N nonces, comma separated  ARGV[9] consumer name  ARGV[10..] queue names, in order
-- Returns {expires_at ms, job1 fields (HGETALL), job2 fields, ...}
local worker, wanted, lease_ms = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
local expires = now + lease_ms
local claimed = {}
-- idle = 1: a consumer runs each job it leases on its own, so a suspect job may start (alone).
claim_into(worker, wanted, true, 10, now, claimed)
local nonces = {}
for nonce in string.gmatch(ARGV[8], '[^,]+') do nonces[#nonces + 1] = nonce end
local reply = {expires}
local deadlines = {}
for i = 1, #claimed, 10 do  -- 10 fields per started job (see start_ids)
  local id = claimed[i]
  local key = key_job(id)
  redis.call('HSET', key, 'lease_nonce', nonces[#reply], 'lease_expires_at', expires)
  deadlines[#deadlines + 1] = expires - tonumber(ARGV[5])
  deadlines[#deadlines + 1] = id
  reply[#reply + 1] = redis.call('HGETALL', key)
end
if #deadlines > 0 then redis.call('ZADD', KEY_deadlines, unpack(deadlines)) end
local score = now
if #reply > 1 then score = expires end
redis.call('ZADD', KEY_workers, 'GT', score, worker)
local info = KEY_worker
redis.call('HSETNX', info, 'started_at', now)
redis.call('HSET', info, 'id', worker, 'host', ARGV[7], 'pid', 0, 'kind', 'http',
  'consumer', ARGV[9], 'queues', table.concat(ARGV, ',', 10), 'slots_total', wanted,
  'slots_busy', redis.call('LLEN', KEY_processing), 'handlers', '', 'last_heartbeat', now)
-- Kept while its score may still say alive, so /workers lists a consumer holding a lease.
local left = tonumber(redis.call('ZSCORE', KEY_workers, worker)) - now
redis.call('PEXPIRE', info, math.max(0, left) + tonumber(ARGV[6]))
return reply
