-- Fair share between clients (API.md §5a, GAFFER_FAIR_SHARE=clients): within one effective
-- priority a claim gives the next job to the client with the fewest jobs running, so it
-- must not read every client's head. These two tables say, per lane, priority and client,
-- where that client's line starts and how many of its jobs run, in the order a claim reads.
--
-- They are filled only while fair share is on (the settings row `fair_share`): the
-- transaction that turns it on rebuilds them from `jobs` and makes the triggers and the
-- index that keep them exact (master/store/sqlite/fair-share.ts); the one that turns it
-- off drops those and empties them, so strict FIFO pays nothing for them.

-- One row per (lane, effective priority, client) with pending jobs.
CREATE TABLE fair_queue (
  lane INTEGER NOT NULL,              -- lanes.id
  effective_priority INTEGER NOT NULL,
  client_id TEXT NOT NULL,
  head_seq INTEGER NOT NULL,          -- jobs.seq of its oldest pending job there
  pending INTEGER NOT NULL,           -- its pending jobs there
  running INTEGER NOT NULL,           -- the client's running jobs, every lane (= fair_clients.running)
  PRIMARY KEY (lane, effective_priority, client_id)
) WITHOUT ROWID;
-- A claim's order: highest priority, then fewest running, then oldest head.
CREATE INDEX fair_queue_order ON fair_queue (lane, effective_priority DESC, running, head_seq);
-- A client's running count changes on all its rows at once.
CREATE INDEX fair_queue_client ON fair_queue (client_id);

-- Each client's running jobs (clients with none have no row).
CREATE TABLE fair_clients (
  client_id TEXT PRIMARY KEY,
  running INTEGER NOT NULL
) WITHOUT ROWID;
