-- jobs.reported_attempt and jobs.reported_status are no longer written or read: each
-- attempt's report is in job_attempts.reported (0003 copied the last one there).
-- DROP COLUMN (SQLite 3.35+) rewrites the table once; its rows are kept.
ALTER TABLE jobs DROP COLUMN reported_attempt;
ALTER TABLE jobs DROP COLUMN reported_status;
