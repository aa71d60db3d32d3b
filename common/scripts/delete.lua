-- delete: remove a terminal job's record and every index entry.
-- KEYS[1] job:<job_id>  KEYS[2] jobs  KEYS[3] expiries  KEYS[4..10] status:*  (dead letters:
-- key_dead(the job's queue))
-- ARGV[1] prefix  ARGV[2] job id
-- Returns {"ok"} | {"invalid_transition", status} | {"not_found"}
local job = load(ARGV[2])
if not job then return {'not_found'} end
if not SOURCES[job.status] then
  return {'invalid_transition', job.status}
end
purge(job.id, job.queue)
event(job, 'deleted', 0, nil)
return {'ok'}
