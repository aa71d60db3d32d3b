-- complete: processing -> completed for N jobs, each only for its current lease holder
-- (fencing); then, as a piggyback, claim up to M next jobs for the same worker. One round
-- trip finishes a batch and refills the slots it freed.
-- KEYS[1] processing:<worker_id>  KEYS[2] paused  KEYS[3] stats  KEYS[4] inflight
-- KEYS[5] deadlines  KEYS[6] expiries  KEYS[7..13] status:*  KEYS[14] jobs  KEYS[15..] queue:<queues> (one per
-- queue name of the piggybacked claim, in ARGV after the results)  (job hashes: key_job(id))
-- ARGV[1] prefix  ARGV[2] worker id  ARGV[3] result ttl (ms)  ARGV[4] N
-- then 3 per job: id, lease, result JSON; then M to claim (0: none), then idle (1|0: the worker
-- runs nothing once these are recorded, see start_ids), then queue names
-- Returns {code1, ..., codeN, claimed...}: code "ok" | "cancelled" | "stale_lease" |
-- "not_found", claimed is 10 fields per started job (see start_ids), then the wait (ms) when a
-- limit held one back (see claim.lua). A job whose cancel was requested while it ran
-- (cancel.lua) ends cancelled instead, its result dropped; its code is "cancelled", so the
-- worker logs what happened (the result was recorded all the same, as far as the caller goes).
local worker, ttl_ms, n = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
local processing = KEY_processing
local reply = {}
local unindex, index, expiries = {}, {}, {}
local stats, inflight, members = {}, {}, {}
for i = 1, n do
  local b = 4 + (i - 1) * 3
  local id, lease = ARGV[b + 1], ARGV[b + 2]
  local key = key_job(id)
  local v = redis.call('HMGET', key, 'status', 'lease', 'queue', 'type', 'started_at',
    'created_at', 'cancel_requested', 'group', 'finish', 'attempts', 'batch')
  if not v[1] then
    redis.call('LREM', processing, 1, id)
    reply[i] = 'not_found'
  elseif (v[1] == ST.completed or v[1] == ST.cancelled) and v[2] == lease then
    -- this very call, sent again after a lost reply
    reply[i] = v[1] == ST.cancelled and 'cancelled' or 'ok'
  elseif not SOURCES[v[1]] or v[2] ~= lease then
    -- A late result from a worker that lost its claim: rejected and counted, never written.
    tally(stats, 'stale_completions', 1)
    redis.call('LREM', processing, 1, id)
    reply[i] = 'stale_lease'
  elseif v[7] == '1' then
    -- Asked to stop while it ran, it returned (ignoring or before its checkpoint): the run ends
    -- cancelled all the same, as fail.lua ends it. Rare, so the plain helpers suffice.
    local job = load(id)
    add_history(job, now, 'cancelled', 'cancelled while running', '') -- jobs.CANCELLED_ERROR
    leave_processing(job)
    set_status(job, ST.cancelled, 'finished_at', now, 'error', 'cancelled while running')
    count('cancelled', job)
    event(job, 'cancelled', now, 'cancelled while running')
    expire_terminal(job, now, ttl_ms)
    on_finished(job, ST.cancelled, now)
    reply[i] = 'cancelled'
  else
    redis.call('HSET', key, 'status', ST.completed, 'result', ARGV[b + 3], 'finished_at', now,
      'error', '')
    redis.call('PEXPIRE', key, ttl_ms)
    redis.call('LREM', processing, 1, id)
    unindex[#unindex + 1] = id
    index[#index + 1] = v[6]
    index[#index + 1] = id
    expiries[#expiries + 1] = now + ttl_ms
    expiries[#expiries + 1] = id
    tally(inflight, v[3], -1)
    if v[11] then tally(members, v[11], 1) end  -- its batch (batch_move below)
    if v[8] then release_group(v[3], v[8]) end
    tally(stats, 'completed|' .. v[3] .. '|' .. v[4], 1)
    emit(id, 'completed', ST.completed, v[3], v[4], v[10], worker, '')
    tally_latency(stats, 'run', v[3], now - (tonumber(v[5]) or now))
    if v[9] then  -- rare: a callback, dependents or a batch wait on this job (_finish.lua)
      on_finished({id = id, queue = v[3], type = v[4], status = ST.completed,
        created_at = tonumber(v[6]) or 0, finish = v[9]}, ST.completed, now)
    end
    reply[i] = 'ok'
  end
end
if #unindex > 0 then
  redis.call('ZREM', KEY_deadlines, unpack(unindex))
  redis.call('ZREM', STATUS_KEY[ST.processing], unpack(unindex))
  redis.call('ZADD', STATUS_KEY[ST.completed], unpack(index))
  redis.call('ZADD', KEY_expiries, unpack(expiries))
  flush_tally(KEY_inflight, inflight)
  for bid, k in pairs(members) do batch_move(bid, ST.processing, ST.completed, k) end
end
flush_tally(KEY_stats, stats)
local wanted = tonumber(ARGV[5 + n * 3]) or 0
if wanted > 0 then
  local _, wait = claim_into(worker, wanted, ARGV[6 + n * 3] == '1', 7 + n * 3, now, reply)
  if wait > 0 then reply[#reply + 1] = wait end
end
return reply
