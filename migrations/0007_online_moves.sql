-- shardctl metadata schema, version 7: online moves. A move's capture, catch-up
-- and fence figures (backlog, replay rate, longest fenced interval, attempts),
-- for `shard status` and the report; the objects themselves live on the source
-- shard (shardctl.move_captures there).
ALTER TABLE shardctl.moves ADD COLUMN online jsonb;
