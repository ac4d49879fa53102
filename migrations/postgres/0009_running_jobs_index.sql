-- Fewer index entries for a job's claim and finish. status is in indexes and in partial-index
-- predicates, so neither update can be HOT: each new row version adds an entry to every index
-- whose predicate it meets. A claim (pending → running) wrote 8 (jobs_pkey, the id key,
-- jobs_node, jobs_stall, jobs_lease, jobs_running_type, jobs_status_seq, jobs_client_seq), a
-- finish (running → completed) 6, and each heartbeat's lease renewal (lease_expires_at is
-- indexed) all 8 again.
--
-- Every reader of jobs_node, jobs_stall, jobs_lease and jobs_running_type wants running jobs
-- only (a node's running count and leases, the dead-node sweep, the stalled and expired-lease
-- sweeps, the running count per type and per client), and running jobs are bounded by the
-- cluster's capacity: one partial index of them serves them all, the sweeps reading every
-- running job and sorting. Nothing indexes lease_expires_at or stall_at any more, so a renewal
-- can be a HOT update.
--
-- Lists by status keep a range of (status, seq) for the states that gather few rows or that an
-- operator looks for: blocked, scheduled, pending, failed, canceled. Running jobs are listed
-- through jobs_running (a sort of at most every running job); completed ones, the common final
-- state, by walking jobs_pkey backwards, where most rows match.
--
-- A claim now writes 4 entries (jobs_pkey, the id key, jobs_client_seq, jobs_running), a finish
-- to completed 4 (the same but jobs_running, and jobs_finished). A list by node no longer reads
-- an index of a node's finished jobs: it walks seq backwards until it has a page.
DROP INDEX jobs_node, jobs_stall, jobs_lease, jobs_running_type, jobs_status_seq;
CREATE INDEX jobs_running ON jobs (node_id, type) WHERE status = 'running';
CREATE INDEX jobs_by_status ON jobs (status, seq) WHERE status IN ('blocked', 'scheduled', 'pending', 'failed', 'canceled');
