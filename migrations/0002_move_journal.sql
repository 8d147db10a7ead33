-- shardctl metadata schema, version 2: the move journal.
-- A plan takes the ring from one epoch to a target ring through moves; every
-- step of a move is recorded here before it runs, so `shard resume` can
-- continue after a crash and `shard abort` can undo an unswitched plan.

CREATE TABLE shardctl.plans (
  id           text PRIMARY KEY,
  kind         text NOT NULL CHECK (kind IN ('add', 'remove', 'rebalance')),
  -- The plan is bound to the ring it was made from: it is refused once the ring has changed.
  from_epoch   bigint NOT NULL,
  target_ring  jsonb NOT NULL,          -- {"vnodes": n, "members": [{"id", "weight"}]}
  -- running | switched (ring changed, cleanup left) | done | failed | aborted
  state        text NOT NULL,
  switched_epoch bigint,
  options      jsonb NOT NULL DEFAULT '{}',
  error        text,
  created_by   text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
-- At most one plan in progress: two plans must never move the same rows.
CREATE UNIQUE INDEX plans_one_active ON shardctl.plans ((true)) WHERE state IN ('running', 'switched', 'failed');

CREATE TABLE shardctl.moves (
  plan_id      text NOT NULL REFERENCES shardctl.plans (id),
  move_no      integer NOT NULL,
  source       text NOT NULL,
  target       text NOT NULL,
  mode         text NOT NULL CHECK (mode IN ('fresh', 'merge')),
  ranges       jsonb NOT NULL,          -- [[start, end], ...] inclusive hash intervals
  -- planned → copying → copied → verified → switched → cleaned; failed; aborted.
  state        text NOT NULL,
  -- For a failed move: the state to continue from.
  resume_state text,
  est_rows     bigint NOT NULL DEFAULT 0,
  est_bytes    bigint NOT NULL DEFAULT 0,
  error        text,
  started_at   timestamptz,
  finished_at  timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (plan_id, move_no)
);

-- Per table of a move: where each phase stands. A cursor is the highest hash
-- whose rows are done for that phase (-1: none yet); batches end on a hash
-- boundary, so "h > cursor" is exactly what is left.
CREATE TABLE shardctl.move_tables (
  plan_id        text NOT NULL,
  move_no        integer NOT NULL,
  table_name     text NOT NULL,
  copy_cursor    bigint NOT NULL DEFAULT -1,
  copy_done      boolean NOT NULL DEFAULT false,
  rows_copied    bigint NOT NULL DEFAULT 0,
  bytes_copied   bigint NOT NULL DEFAULT 0,
  source_rows    bigint,
  source_sum     numeric,
  target_rows    bigint,
  target_sum     numeric,
  resyncs        integer NOT NULL DEFAULT 0,
  cleanup_cursor bigint NOT NULL DEFAULT -1,
  cleanup_done   boolean NOT NULL DEFAULT false,
  rows_deleted   bigint NOT NULL DEFAULT 0,
  -- Rows left on the source after cleanup: not identical on the target (written after the copy, or conflicting).
  rows_left      bigint,
  PRIMARY KEY (plan_id, move_no, table_name),
  FOREIGN KEY (plan_id, move_no) REFERENCES shardctl.moves (plan_id, move_no)
);
