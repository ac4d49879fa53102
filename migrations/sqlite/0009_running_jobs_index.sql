-- Fewer index entries for a job's claim and finish. SQLite rewrites every index whose columns,
-- or whose predicate's columns, a statement changes: a claim (pending → running) wrote
-- jobs_node, jobs_stall, jobs_lease and jobs_status_seq (an entry out, an entry in), a finish
-- (running → completed) the same four again, and each heartbeat's lease renewal jobs_lease.
--
-- Every reader of jobs_node, jobs_stall and jobs_lease wants running jobs only (a node's running
-- count and leases, the dead-node sweep, the stalled and expired-lease sweeps, the running count
-- per type and per client), and running jobs are bounded by the cluster's capacity: one partial
-- index of them serves them all, the sweeps reading every running job and sorting. A claim adds
-- one entry to it, a finish takes it out; a renewal touches no index.
--
-- Lists by status keep a range of (status, seq) for the states that gather few rows or that an
-- operator looks for: blocked, scheduled, pending, failed, canceled. Running jobs are listed
-- through jobs_running (a sort of at most every running job); completed ones, the common final
-- state, by walking seq backwards, where most rows match. A finish to completed writes no entry.
-- The predicate is ORed equalities, not IN: SQLite uses a partial index only when a term of the
-- query (status = 'pending') is one of its predicate's terms.
--
-- A list by node no longer reads an index of a node's finished jobs: it walks seq backwards, as
-- the list already did for most filters.
DROP INDEX jobs_node;
DROP INDEX jobs_stall;
DROP INDEX jobs_lease;
DROP INDEX jobs_status_seq;
CREATE INDEX jobs_running ON jobs (node_id, type) WHERE status = 'running';
CREATE INDEX jobs_by_status ON jobs (status, seq)
  WHERE status = 'blocked' OR status = 'scheduled' OR status = 'pending' OR status = 'failed' OR status = 'canceled';
