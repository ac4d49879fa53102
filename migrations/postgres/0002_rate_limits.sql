-- Rate limits shared by every master (API.md §4, §12): one row per counter, in the layout
-- of rate-limiter-flexible's PostgreSQL store (key = "<limit>:<who>", points used in the
-- current window, expire = the window's end in milliseconds since 1970).
-- UNLOGGED: counters need no WAL and no flush at commit; a crash of the server (or a
-- failover to a replica) empties the table, which only starts every window afresh.
CREATE UNLOGGED TABLE rate_limits (
  key text PRIMARY KEY,
  points integer NOT NULL DEFAULT 0,
  expire bigint
);
-- The cleanup (deleteExpired) takes the expired counters a batch at a time, by expire.
CREATE INDEX rate_limits_expire ON rate_limits (expire);
