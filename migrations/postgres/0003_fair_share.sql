-- Fair share between clients (API.md §5a, GAFFER_FAIR_SHARE=clients), as on SQLite
-- (migrations/sqlite/0007_fair_share.sql): per lane, priority and client, where that
-- client's line starts and how many of its jobs run, in the order a claim reads.
--
-- Filled only while fair share is on (the settings row `fair_share`): the transaction that
-- turns it on locks jobs against writes, makes the triggers and the index below and
-- rebuilds the tables from jobs (master/store/postgres/fair-share.ts); turning it off drops
-- them and empties the tables, so strict FIFO pays nothing for them.

CREATE TABLE fair_queue (
  lane integer NOT NULL,
  effective_priority integer NOT NULL,
  client_id text NOT NULL,
  head_seq bigint NOT NULL,           -- jobs.seq of its oldest pending job there
  pending integer NOT NULL,           -- its pending jobs there
  running integer NOT NULL,           -- the client's running jobs, every lane (= fair_clients.running)
  PRIMARY KEY (lane, effective_priority, client_id)
);
CREATE INDEX fair_queue_order ON fair_queue (lane, effective_priority DESC, running, head_seq);
CREATE INDEX fair_queue_client ON fair_queue (client_id);

-- Each client's running jobs. A change of a client's line locks its row first (so two
-- masters' changes of one client's rows follow each other, and a new fair_queue row
-- reads a running count no one is changing); a row may stay at 0.
CREATE TABLE fair_clients (
  client_id text PRIMARY KEY,
  running integer NOT NULL
);

-- What one statement did to a job's fair-share facts: left (-1) or entered (+1) a line, or
-- started (+1) or stopped (-1) running.
CREATE TYPE gaffer_fair_change AS (
  lane integer,
  effective_priority integer,
  client_id text,
  seq bigint,
  pending integer,
  running integer
);

-- One function for every statement that changes jobs, called by the statement triggers
-- fair-share.ts makes while the mode is on (transition tables fair_old and fair_new). It adds
-- up the statement's changes by line (lane, priority, client) and by client and writes each
-- row once, in one order for every statement: the clients' rows by client_id, then the lines
-- by (client_id, lane, priority). A row trigger locked them in the order the statement met
-- its jobs (seq order), and a claim spreads across clients, so two claims (or a claim and a
-- batch of results) locked clients A, B and B, A and deadlocked.
-- Transition tables cannot go with a column list: the UPDATE trigger runs for every UPDATE
-- of jobs, and one that moves no job in or out of pending or running finds nothing to do.
CREATE FUNCTION gaffer_fair_share() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  changes gaffer_fair_change[];
BEGIN
  IF TG_OP = 'INSERT' THEN
    SELECT array_agg(ROW(n.lane, n.effective_priority, n.client_id, n.seq,
                         (n.status = 'pending')::integer, (n.status = 'running')::integer)::gaffer_fair_change)
      INTO changes FROM fair_new n WHERE n.status IN ('pending', 'running');
  ELSIF TG_OP = 'DELETE' THEN
    SELECT array_agg(ROW(o.lane, o.effective_priority, o.client_id, o.seq,
                         -(o.status = 'pending')::integer, -(o.status = 'running')::integer)::gaffer_fair_change)
      INTO changes FROM fair_old o WHERE o.status IN ('pending', 'running');
  ELSE
    SELECT array_agg(c) INTO changes
    FROM fair_old o JOIN fair_new n ON n.seq = o.seq
    CROSS JOIN LATERAL (
      -- Left its line: no longer pending, or pending at another priority.
      SELECT ROW(o.lane, o.effective_priority, o.client_id, o.seq, -1, 0)::gaffer_fair_change AS c
        WHERE o.status = 'pending' AND (n.status <> 'pending' OR n.effective_priority <> o.effective_priority)
      UNION ALL
      SELECT ROW(n.lane, n.effective_priority, n.client_id, n.seq, 1, 0)::gaffer_fair_change
        WHERE n.status = 'pending' AND (o.status <> 'pending' OR n.effective_priority <> o.effective_priority)
      UNION ALL
      SELECT ROW(NULL, NULL, n.client_id, n.seq, 0, (n.status = 'running')::integer - (o.status = 'running')::integer)::gaffer_fair_change
        WHERE (o.status = 'running') <> (n.status = 'running')
    ) x
    WHERE (o.status IN ('pending', 'running') OR n.status IN ('pending', 'running'))
      AND (o.status <> n.status OR o.effective_priority <> n.effective_priority);
  END IF;
  IF changes IS NULL THEN
    RETURN NULL;
  END IF;

  -- Each client's row first, locked (or made) in client order: two masters' changes of one
  -- client's rows follow each other, and a new line reads a running count no one is changing.
  INSERT INTO fair_clients AS f (client_id, running)
    SELECT c.client_id, sum(c.running) FROM unnest(changes) c GROUP BY c.client_id ORDER BY c.client_id
  ON CONFLICT (client_id) DO UPDATE SET running = f.running + excluded.running;

  -- Then the lines, in (client, lane, priority) order: pending added up, head_seq the oldest
  -- of the old head and the jobs that came in (a line that only lost jobs keeps its head here).
  INSERT INTO fair_queue AS q (lane, effective_priority, client_id, head_seq, pending, running)
    SELECT l.lane, l.effective_priority, l.client_id, l.entered, l.pending, f.running
    FROM (SELECT c.lane, c.effective_priority, c.client_id, sum(c.pending)::integer AS pending,
                 coalesce(min(c.seq) FILTER (WHERE c.pending > 0), 9223372036854775807) AS entered
          FROM unnest(changes) c WHERE c.pending <> 0
          GROUP BY c.client_id, c.lane, c.effective_priority) l
    JOIN fair_clients f ON f.client_id = l.client_id
    ORDER BY l.client_id, l.lane, l.effective_priority
  ON CONFLICT (lane, effective_priority, client_id)
    DO UPDATE SET pending = q.pending + excluded.pending, head_seq = least(q.head_seq, excluded.head_seq),
                  running = excluded.running;

  -- The other lines of clients whose running count changed (rows this transaction's lock on
  -- the client's fair_clients row already keeps from every other writer).
  UPDATE fair_queue q SET running = f.running
  FROM fair_clients f
  WHERE f.client_id = ANY(ARRAY(SELECT DISTINCT c.client_id FROM unnest(changes) c WHERE c.running <> 0))
    AND q.client_id = f.client_id AND q.running <> f.running;

  -- Lines left empty go; a line whose head left gets its new head from jobs (the head is the
  -- oldest pending job, so it left if it is the oldest that left and no older job came in:
  -- then head_seq still names it).
  DELETE FROM fair_queue q
  USING (SELECT DISTINCT c.lane, c.effective_priority, c.client_id FROM unnest(changes) c WHERE c.pending < 0) l
  WHERE q.lane = l.lane AND q.effective_priority = l.effective_priority AND q.client_id = l.client_id AND q.pending <= 0;
  UPDATE fair_queue q SET head_seq = coalesce((
      SELECT min(j.seq) FROM jobs j
      WHERE j.status = 'pending' AND j.lane = q.lane AND j.effective_priority = q.effective_priority AND j.client_id = q.client_id), q.head_seq)
  FROM (SELECT c.lane, c.effective_priority, c.client_id, min(c.seq) AS left_head FROM unnest(changes) c WHERE c.pending < 0
        GROUP BY c.lane, c.effective_priority, c.client_id) l
  WHERE q.lane = l.lane AND q.effective_priority = l.effective_priority AND q.client_id = l.client_id AND q.head_seq = l.left_head;
  RETURN NULL;
END
$$;
