-- TRUNCATE jobs (an operator's, with CASCADE for job_dependencies) fires no DELETE trigger:
-- the jobs' attempts, which no foreign key ties to them since 0005, would stay, and so would
-- what the statement triggers keep from jobs: each client's unfinished count (a quota would go
-- on refusing submits for jobs that are gone) and fair share's lines. With no job left, the
-- attempts and the lines are empty and every count is 0.
CREATE FUNCTION gaffer_jobs_truncated() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  TRUNCATE job_attempts;
  UPDATE client_job_counts SET unfinished = 0 WHERE unfinished <> 0;
  DELETE FROM fair_queue;
  UPDATE fair_clients SET running = 0 WHERE running <> 0;
  RETURN NULL;
END
$$;

CREATE TRIGGER jobs_truncated AFTER TRUNCATE ON jobs
  FOR EACH STATEMENT EXECUTE FUNCTION gaffer_jobs_truncated();
