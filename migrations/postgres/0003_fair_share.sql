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

-- One function for every change of a job, called by the triggers fair-share.ts makes while
-- the mode is on. AFTER ROW triggers run once the statement has changed all its rows, so a
-- line's new head is read once all of a claim's jobs have left it.
CREATE FUNCTION gaffer_fair_share() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  was_pending boolean := TG_OP <> 'INSERT' AND OLD.status = 'pending';
  is_pending boolean := TG_OP <> 'DELETE' AND NEW.status = 'pending';
  was_running boolean := TG_OP <> 'INSERT' AND OLD.status = 'running';
  is_running boolean := TG_OP <> 'DELETE' AND NEW.status = 'running';
  moved boolean := was_pending AND is_pending AND OLD.effective_priority IS DISTINCT FROM NEW.effective_priority;
  delta integer := is_running::integer - was_running::integer;
  client text := CASE WHEN TG_OP = 'DELETE' THEN OLD.client_id ELSE NEW.client_id END;
  running_now integer;
  left_pending integer;
  head bigint;
BEGIN
  IF NOT (was_pending <> is_pending OR moved OR delta <> 0) THEN
    RETURN NULL;
  END IF;
  IF delta = 0 THEN
    SELECT running INTO running_now FROM fair_clients WHERE client_id = client FOR UPDATE;
  END IF;
  IF delta <> 0 OR running_now IS NULL THEN
    INSERT INTO fair_clients (client_id, running) VALUES (client, delta)
      ON CONFLICT (client_id) DO UPDATE SET running = fair_clients.running + excluded.running
      RETURNING running INTO running_now;
  END IF;
  IF delta <> 0 THEN
    UPDATE fair_queue SET running = running_now WHERE client_id = client;
  END IF;
  IF was_pending AND (NOT is_pending OR moved) THEN
    UPDATE fair_queue SET pending = pending - 1
      WHERE lane = OLD.lane AND effective_priority = OLD.effective_priority AND client_id = client
      RETURNING pending, head_seq INTO left_pending, head;
    IF left_pending <= 0 THEN
      DELETE FROM fair_queue WHERE lane = OLD.lane AND effective_priority = OLD.effective_priority AND client_id = client;
    ELSIF head = OLD.seq THEN
      UPDATE fair_queue SET head_seq = coalesce((
          SELECT min(seq) FROM jobs
          WHERE status = 'pending' AND lane = OLD.lane AND effective_priority = OLD.effective_priority AND client_id = client), head_seq)
        WHERE lane = OLD.lane AND effective_priority = OLD.effective_priority AND client_id = client;
    END IF;
  END IF;
  IF is_pending AND (NOT was_pending OR moved) THEN
    INSERT INTO fair_queue (lane, effective_priority, client_id, head_seq, pending, running)
      VALUES (NEW.lane, NEW.effective_priority, client, NEW.seq, 1, running_now)
      ON CONFLICT (lane, effective_priority, client_id)
      DO UPDATE SET pending = fair_queue.pending + 1, head_seq = least(fair_queue.head_seq, excluded.head_seq);
  END IF;
  RETURN NULL;
END
$$;
