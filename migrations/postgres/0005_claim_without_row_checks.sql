-- The hand-out and the attempt it starts without a foreign-key check per job. A claim sets
-- jobs.node_id and inserts a job_attempts row for each job it takes; each ran a check of its
-- foreign key (a look-up and a row lock of the node, then of the job just taken), the largest
-- part of the claim's UPDATE after its index entries. Neither guards anything the store does:
-- the claim takes the node's row lock first and writes the node_id it holds, and writes each
-- attempt row for the job it takes in the same statement; gaffer never deletes a node (a node
-- leaves as 'offline'), and job_attempts.node_id has never had a foreign key.
-- Deleting a job still deletes its attempts (retention's purge, an operator's DELETE), now by a
-- statement trigger over the deleted rows instead of the cascade.
ALTER TABLE jobs DROP CONSTRAINT jobs_node_id_fkey;
ALTER TABLE job_attempts DROP CONSTRAINT job_attempts_job_id_fkey;

CREATE FUNCTION gaffer_attempts_deleted() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  DELETE FROM job_attempts a USING attempts_deleted_old d WHERE a.job_id = d.id;
  RETURN NULL;
END
$$;

CREATE TRIGGER jobs_attempts_deleted AFTER DELETE ON jobs
  REFERENCING OLD TABLE AS attempts_deleted_old
  FOR EACH STATEMENT EXECUTE FUNCTION gaffer_attempts_deleted();
