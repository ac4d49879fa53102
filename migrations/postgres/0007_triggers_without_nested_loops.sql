-- The statement triggers that keep the quota counts (0004) and fair share's lines (0003) join
-- a statement's old rows to its new ones by seq. A connection plans that join the first time
-- its trigger runs, from a small statement, and keeps the plan: a nested loop, whose time grows
-- with the square of the rows. One statement failing 10,000 dependents of a failed job then
-- spent 14 s in the trigger, and 20,000 ran past the statement timeout, every time (a review's
-- measure); with a hash join, 10 ms. Neither join has anything else to gain from a nested loop.
ALTER FUNCTION gaffer_count_changed() SET enable_nestloop = off;
ALTER FUNCTION gaffer_fair_share() SET enable_nestloop = off;
