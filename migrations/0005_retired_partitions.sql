-- shardctl metadata schema, version 5: partitions that `partition rotate` retired.
-- A detached or archived partition is still a table on its shard; this is where an
-- operator finds it again (`partition list --retired`). Written under the lease, so
-- fenced like every other state table.

CREATE TABLE shardctl.retired_partitions (
  id            bigserial PRIMARY KEY,
  shard         text NOT NULL,
  parent        text NOT NULL,            -- the partitioned table, schema-qualified
  partition     text NOT NULL,            -- its name when it was attached
  mode          text NOT NULL CHECK (mode IN ('drop', 'detach', 'archive')),
  now_at        text,                     -- where the table is now (schema.name); null once dropped
  bound_from    text,
  bound_to      text,
  rows          bigint,
  bytes         bigint,
  retired_at    timestamptz NOT NULL DEFAULT now(),
  retired_by    text NOT NULL
);
CREATE INDEX retired_partitions_parent ON shardctl.retired_partitions (parent, retired_at DESC);

CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON shardctl.retired_partitions
  FOR EACH STATEMENT EXECUTE FUNCTION shardctl.assert_lease();
