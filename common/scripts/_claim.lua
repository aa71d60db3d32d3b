-- The hot path, batched: per job only the reads and writes of its own hash; every index,
-- gauge and counter is updated once per call with variadic commands.
--
-- Suspect jobs (recovered from a worker that died while running several jobs) start only
-- when the worker runs nothing else, and alone: if one kills its worker again, the blame, and
-- the used-up attempt, is certain. Until a worker is idle a suspect job at the head of a queue
-- stops the claim, so it is not overtaken and no worker keeps claiming around it.

local START_FIELDS = {'status', 'queue', 'type', 'attempts', 'max_attempts', 'timeout_ms',
  'created_at', 'enqueued_at', 'lease', 'payload', 'suspect'}

-- Puts ids[from..] (oldest first) back at the front of the queue list in their order.
local function put_back(processing, queue_key, ids, from)
  local back = {}
  for i = #ids, from, -1 do
    redis.call('LREM', processing, 1, ids[i])
    back[#back + 1] = ids[i]
  end
  if #back > 0 then redis.call('RPUSH', queue_key, unpack(back)) end
end

-- start_ids: pending -> processing for ids already in the worker's processing list, oldest
-- first, all from `queue`. claim = {started, idle, stop}: started counts across the calls of
-- one claim; idle says the worker runs nothing, so a suspect job may start (alone); stop is set
-- when a suspect job ends the claim. Appends 10 fields per started job to reply: id, type,
-- queue, payload, attempt, max_attempts, timeout_ms, lease, created_at, alone (1|0). Ids no
-- longer pending (cancelled meanwhile) are dropped.
local function start_ids(worker, queue, queue_key, ids, now, reply, claim)
  local processing = KEY_processing
  local unindex, index, deadlines = {}, {}, {}
  local stats, inflight = {}, {}
  for i, id in ipairs(ids) do
    local key = key_job(id)
    local v = redis.call('HMGET', key, unpack(START_FIELDS))
    local alone = v[11] == '1'
    if not START_SOURCES[v[1]] then
      redis.call('LREM', processing, 1, id)
    elseif alone and not (claim.idle and claim.started == 0) then
      put_back(processing, queue_key, ids, i)
      claim.stop = true
      break
    else
      local attempt = (tonumber(v[4]) or 0) + 1
      local lease = (tonumber(v[9]) or 0) + 1
      redis.call('HSET', key, 'status', ST.processing, 'started_at', now, 'worker', worker,
        'attempts', attempt, 'lease', lease)
      unindex[#unindex + 1] = id
      index[#index + 1] = v[7]
      index[#index + 1] = id
      deadlines[#deadlines + 1] = now + tonumber(v[6])
      deadlines[#deadlines + 1] = id
      tally(inflight, v[2], 1)
      tally_latency(stats, 'wait', v[2], now - (tonumber(v[8]) or now))
      claim.started = claim.started + 1
      local n = #reply
      reply[n + 1] = id
      reply[n + 2] = v[3]
      reply[n + 3] = v[2]
      reply[n + 4] = v[10]
      reply[n + 5] = attempt
      reply[n + 6] = v[5]
      reply[n + 7] = v[6]
      reply[n + 8] = lease
      reply[n + 9] = v[7]
      reply[n + 10] = alone and 1 or 0
      if alone then
        put_back(processing, queue_key, ids, i + 1)
        claim.stop = true
        break
      end
    end
  end
  if #unindex > 0 then
    redis.call('ZREM', STATUS_KEY[ST.pending], unpack(unindex))
    redis.call('ZADD', STATUS_KEY[ST.processing], unpack(index))
    redis.call('ZADD', KEY_deadlines, unpack(deadlines))
    flush_tally(KEY_inflight, inflight)
    flush_tally(KEY_stats, stats)
  end
end

-- claim_into: moves up to `wanted` ids from the queues named in ARGV[first..] (priority
-- order, paused ones skipped) into the worker's list and starts them. Oldest ids first.
-- Their lists arrive in KEYS from QUEUE_KEYS_FROM on, one per name, in the same order.
-- idle: the worker runs nothing (see start_ids). Returns how many started.
local function claim_into(worker, wanted, idle, first, now, reply)
  local claim = {started = 0, idle = idle, stop = false}
  local processing = KEY_processing
  for q = first, #ARGV do
    if claim.started >= wanted or claim.stop then break end
    local queue = KEYS[QUEUE_KEYS_FROM + q - first]
    if redis.call('SISMEMBER', KEY_paused, ARGV[q]) == 0 then
      -- Cancelled ids are dropped by start_ids, so loop until enough started or empty.
      while claim.started < wanted and not claim.stop do
        local want = wanted - claim.started
        local taken = redis.call('LRANGE', queue, -want, -1)
        if #taken == 0 then break end
        redis.call('LTRIM', queue, 0, -(#taken + 1))
        local ids = {}
        for i = #taken, 1, -1 do ids[#ids + 1] = taken[i] end
        -- Newest taken leftmost, as BLMOVE leaves it: recovery then restores the queue order.
        redis.call('LPUSH', processing, unpack(ids))
        start_ids(worker, ARGV[q], queue, ids, now, reply, claim)
      end
    end
  end
  return claim.started
end
