-- The hot path, batched: per job only the reads and writes of its own hash; every index,
-- gauge and counter is updated once per call with variadic commands.

local START_FIELDS = {'status', 'queue', 'type', 'attempts', 'max_attempts', 'timeout_ms',
  'created_at', 'enqueued_at', 'lease', 'payload'}

-- start_ids: pending -> processing for ids already in the worker's processing list. Appends 9
-- fields per started job to reply: id, type, queue, payload, attempt, max_attempts,
-- timeout_ms, lease, created_at. Ids no longer pending (cancelled meanwhile) are dropped.
local function start_ids(worker, ids, now, reply)
  local processing = P .. 'processing:' .. worker
  local unindex, index, deadlines = {}, {}, {}
  local stats, inflight = {}, {}
  for _, id in ipairs(ids) do
    local key = P .. 'job:' .. id
    local v = redis.call('HMGET', key, unpack(START_FIELDS))
    if v[1] ~= ST.pending then
      redis.call('LREM', processing, 1, id)
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
    end
  end
  if #unindex > 0 then
    redis.call('ZREM', P .. 'status:' .. ST.pending, unpack(unindex))
    redis.call('ZADD', P .. 'status:' .. ST.processing, unpack(index))
    redis.call('ZADD', P .. 'deadlines', unpack(deadlines))
    flush_tally(P .. 'inflight', inflight)
    flush_tally(P .. 'stats', stats)
  end
  return #unindex
end

-- claim_into: moves up to `wanted` ids from the queues named in ARGV[first..] (priority
-- order, paused ones skipped) into the worker's list and starts them. Oldest ids first.
local function claim_into(worker, wanted, first, now, reply)
  local started = 0
  local processing = P .. 'processing:' .. worker
  for q = first, #ARGV do
    if started >= wanted then break end
    local queue = P .. 'queue:' .. ARGV[q]
    if redis.call('SISMEMBER', P .. 'paused', ARGV[q]) == 0 then
      -- Cancelled ids are dropped by start_ids, so loop until enough started or empty.
      while started < wanted do
        local want = wanted - started
        local taken = redis.call('LRANGE', queue, -want, -1)
        if #taken == 0 then break end
        redis.call('LTRIM', queue, 0, -(#taken + 1))
        redis.call('LPUSH', processing, unpack(taken))
        local ids = {}
        for i = #taken, 1, -1 do ids[#ids + 1] = taken[i] end
        started = started + start_ids(worker, ids, now, reply)
      end
    end
  end
  return started
end
