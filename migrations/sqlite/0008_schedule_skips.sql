-- A schedule's last tick that submitted no job (API.md §5): the tick, why (quota_exceeded,
-- invalid_cron, invalid_timezone, unstorable_job, submit_failed) and what its owner is told.
-- The audit log keeps every skip (schedule.skipped); these are what GET /schedules/:id shows.
ALTER TABLE schedules ADD COLUMN last_skipped_at TEXT;
ALTER TABLE schedules ADD COLUMN last_skip_reason TEXT;
ALTER TABLE schedules ADD COLUMN last_skip_message TEXT;
