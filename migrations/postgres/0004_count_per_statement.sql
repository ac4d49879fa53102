-- Quotas' counts (client_job_counts, 0001) kept once per statement instead of once per row:
-- a batch of results finishing 1,000 jobs ran the row trigger's plpgsql and its UPDATE of the
-- client's count 1,000 times, under the count row's lock; now each statement that changes jobs
-- adds up its changes by client from its transition tables and writes each client's count once.
-- (Transition tables cannot go with a column list, so the UPDATE trigger runs for every UPDATE
-- of jobs; one that changes no status finds nothing to write.)
DROP TRIGGER jobs_count_status ON jobs;
DROP TRIGGER jobs_count_deleted ON jobs;
DROP FUNCTION gaffer_count_unfinished();

CREATE FUNCTION gaffer_count_changed() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO client_job_counts AS c (client_id, unfinished)
    SELECT n.client_id,
           sum(CASE WHEN o.status IN ('completed', 'failed', 'canceled') THEN 1 ELSE -1 END)
    FROM changed_old o JOIN changed_new n ON n.seq = o.seq
    WHERE (o.status IN ('completed', 'failed', 'canceled')) <> (n.status IN ('completed', 'failed', 'canceled'))
    GROUP BY n.client_id
    -- Count rows locked in one order by every statement: two masters' statements cannot deadlock on them.
    ORDER BY n.client_id
  ON CONFLICT (client_id) DO UPDATE SET unfinished = c.unfinished + excluded.unfinished;
  RETURN NULL;
END
$$;

CREATE FUNCTION gaffer_count_deleted() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  UPDATE client_job_counts c SET unfinished = c.unfinished - d.n
  FROM (SELECT client_id, count(*) AS n FROM deleted_old
        WHERE status NOT IN ('completed', 'failed', 'canceled') GROUP BY client_id) d
  WHERE c.client_id = d.client_id;
  -- (An UPDATE … FROM locks in the join's order; deletes of unfinished jobs are an operator's, rare.)
  RETURN NULL;
END
$$;

CREATE TRIGGER jobs_count_status AFTER UPDATE ON jobs
  REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
  FOR EACH STATEMENT EXECUTE FUNCTION gaffer_count_changed();
CREATE TRIGGER jobs_count_deleted AFTER DELETE ON jobs
  REFERENCING OLD TABLE AS deleted_old
  FOR EACH STATEMENT EXECUTE FUNCTION gaffer_count_deleted();
