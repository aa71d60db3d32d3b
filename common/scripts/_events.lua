-- The live event stream (common/events.py reads it; GET /events serves it). Every transition
-- appends one entry in the script that makes it, so the stream never tells of a change Redis
-- did not make, nor misses one it made. The stream key is built from P, the namespace's
-- hash-tagged prefix, so it lives in the slot of the keys the script changes: on the Cluster
-- layout each shard's scripts write their own shard's stream.
--
-- Its cap lives in Redis (EVENTS_MAX_KEY, written by every process at start from EVENTS_MAX;
-- absent: EVENTS_MAX_DEFAULT), read once per call, so all scripts of all processes trim to one
-- value; 0 turns the stream off (one GET per call, nothing written). XADD MAXLEN ~ trims whole
-- stream nodes only (stream-node-max-entries, 100 by default): constant work per entry, at the
-- price of up to one node more than the cap.
--
-- Every entry has the same fields in the same order, so Redis stores their names once per node:
-- ev (event name), job, status (after the transition), queue, type, attempt, worker, detail (a
-- short error or progress, '' when none). The entry's time is its id's ms part.

local EVENTS = {}  -- EVENTS.max: the cap, read on the first event of this call

-- One entry from plain values (the batched hot paths call this, with no job table).
local function emit(id, name, status, queue, job_type, attempt, worker, detail)
  local max = EVENTS.max
  if not max then
    local stored = redis.pcall('GET', EVENTS_MAX_KEY)
    max = type(stored) == 'string' and tonumber(stored) or EVENTS_MAX_DEFAULT
    EVENTS.max = max
  end
  if max <= 0 then return end
  if detail and #detail > EVENT_DETAIL_MAX then detail = string.sub(detail, 1, EVENT_DETAIL_MAX) end
  -- pcall: a stream Redis refuses (a key of another type, written by hand) costs the event,
  -- never the transition; a script that raised here would stop half-way through its writes.
  redis.pcall('XADD', EVENTS_KEY, 'MAXLEN', '~', max, '*', 'ev', name, 'job', id,
    'status', status or '', 'queue', queue or '', 'type', job_type or '', 'attempt', attempt or 0,
    'worker', worker or '', 'detail', detail or '')
end

-- Transition `name` of `job` (a table with at least id, queue, type; status, attempts and
-- worker when known), `extra` a short detail or nil. `now` is kept for the contract (the
-- entry's id carries Redis's own time).
local function event(job, name, now, extra)
  emit(job.id, name, job.status, job.queue, job.type, job.attempts, job.worker, extra)
end

-- A `progress` event for the job hash at `key` (a running job's report), at most one per
-- PROGRESS_EVENT_MS (common/events.py): a handler or consumer reporting in a tight loop must
-- not flood the capped stream, pushing other jobs' events out of it. The job keeps every
-- report; its `progress_event_at` is when its last progress event was written.
local function progress_event(key, now, progress)
  local job = redis.call('HMGET', key, 'id', 'queue', 'type', 'attempts', 'worker',
    'progress_event_at')
  if now - (tonumber(job[6]) or 0) < PROGRESS_EVENT_MS then return end
  redis.call('HSET', key, 'progress_event_at', now)
  emit(job[1], 'progress', ST.processing, job[2], job[3], job[4], job[5], progress)
end
