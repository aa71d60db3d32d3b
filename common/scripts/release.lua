-- release: ids in the worker's list that it no longer runs go back to the front of their
-- queue without using up an attempt. At shutdown (keep nothing, deregister) that is the
-- whole list; after a lost reply, every id except those still running. A job left running
-- in an abandoned thread loses its lease, so its late result is rejected.
-- KEYS[1] processing:<worker_id>  KEYS[2] workers  KEYS[3] worker:<worker_id>  KEYS[4] inflight
-- KEYS[5] deadlines  KEYS[6..12] status:*  (job hashes and their queues: key_<name>)
-- ARGV[1] prefix  ARGV[2] worker id  ARGV[3] deregister (1|0)  ARGV[4..] ids still running
-- Returns the number of jobs requeued
local worker = ARGV[2]
local keep = {}
for i = 4, #ARGV do keep[ARGV[i]] = true end
local now = now_ms()
local requeued = 0
for _, id in ipairs(redis.call('LRANGE', KEY_processing, 0, -1)) do
  if not keep[id] then
    local job = load(id)
    redis.call('LREM', KEY_processing, 1, id)
    if id == WAKE then rewake(KEY_worker) end
    if job and job.status == ST.processing and job.worker == worker then
      leave_processing(job)
      revoke_lease(job)
      to_pending(job, now, true, 'attempts', math.max(job.attempts - 1, 0))
      job.attempts = math.max(job.attempts - 1, 0)
      event(job, 'released', now, nil)
      requeued = requeued + 1
    elseif job and job.status == ST.pending then
      push_pending(job.queue, id, priority_of(job.priority), true)
      requeued = requeued + 1
    end
  end
end
if ARGV[3] == '1' then
  redis.call('DEL', KEY_processing)
  redis.call('ZREM', KEY_workers, worker)
  redis.call('DEL', KEY_worker)
end
return requeued
