-- start: pending -> processing for one id the worker already moved with BLMOVE. A worker
-- blocks only when it runs nothing, so a suspect job may start here (alone).
-- KEYS[1] processing:<worker_id>  KEYS[2] queue:<queue>  KEYS[3] paused  KEYS[4] stats
-- KEYS[5] inflight  KEYS[6] deadlines  KEYS[7..13] status:*  KEYS[14] jobs  (the job hash: key_job(id))
-- ARGV[1] prefix  ARGV[2] worker id  ARGV[3] job id, or '' for the id BLMOVE just put at the
--   head of KEYS[1] (the call pipelined behind BLMOVE: one round trip)  ARGV[4] its queue
-- A job of the queue's priority ZSET (_lib.lua push_priority) starts instead of the id given
-- whenever one waits; a WAKE moved by BLMOVE only says that one may.
-- Returns 10 fields (see start_ids), {} when the job is gone, cancelled, parked at its group's
-- cap or its queue paused, or, given '', when BLMOVE moved nothing from that queue; {wait ms}
-- when the queue's limits hold it back (it goes back to the front of its queue).
local worker, id, queue = ARGV[2], ARGV[3], ARGV[4]
if id == '' then
  id = redis.call('LINDEX', KEY_processing, 0)
  if not id then return {} end
  -- A running job, or one of another queue, at the head is not the id BLMOVE moved (it
  -- timed out): leave it to the release after a lost reply. A gone or cancelled job's id is
  -- dropped below, as with an id given.
  if id ~= WAKE then
    local head = redis.call('HMGET', key_job(id), 'queue', 'status')
    if head[2] == ST.processing or (head[1] and head[1] ~= queue) then return {} end
  end
end
-- The id goes back to the front of its queue, where its priority keeps it, if still pending (a
-- cancelled one is dropped). A WAKE goes back only while prioritized jobs wait and the list is
-- empty, so that another blocked worker wakes for them: a queue's list is never empty while
-- its priority ZSET holds a job (the WAKE's other pushes keep that too).
local zset = key_priority(queue)
local function hand_back()
  if redis.call('LREM', KEY_processing, 1, id) == 0 then return end
  if id == WAKE then
    if redis.call('EXISTS', zset) == 1 and redis.call('LLEN', KEY_queue) == 0 then
      redis.call('RPUSH', KEY_queue, WAKE)
    end
    return
  end
  local v = redis.call('HMGET', key_job(id), 'status', 'priority')
  if v[1] == ST.pending then push_pending(queue, id, priority_of(v[2]), true) end
end
if redis.call('SISMEMBER', KEY_paused, queue) == 1 then
  hand_back()  -- paused while we were blocked
  return {}
end
local now = now_ms()
local claim = {started = 0, idle = true, stop = false, parked = 0}
local allowed, wait = admit(queue, 1, now, claim)
if allowed == 0 then
  hand_back()
  return {wait}
end
-- A prioritized job goes before any of the list (a WAKE says one came while we were blocked):
-- the id BLMOVE moved goes back to the front of the list, and the first of the ZSET starts.
local ids = {id}
if id == WAKE or redis.call('EXISTS', zset) == 1 then
  hand_back()  -- a WAKE stays for the next blocked worker if more than one job waits
  ids = take(queue, KEY_queue, 1)
end
local reply = {}
start_ids(worker, queue, KEY_queue, ids, now, reply, claim)
charge(queue, claim, claim.started, now)
return reply
