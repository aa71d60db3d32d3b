-- delete: remove a terminal job's record and every index entry.
-- KEYS[1] job hash
-- ARGV[1] prefix  ARGV[2] job id
-- Returns {"ok"} | {"invalid_transition", status} | {"not_found"}
local job = load(ARGV[2])
if not job then return {'not_found'} end
if job.status ~= ST.completed and job.status ~= ST.failed and job.status ~= ST.cancelled then
  return {'invalid_transition', job.status}
end
purge(job.id, job.queue)
return {'ok'}
