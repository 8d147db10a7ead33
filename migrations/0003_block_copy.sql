-- shardctl metadata schema, version 3: fresh moves copy in the source's
-- physical order (no sort), a batch being a run of whole heap blocks.
-- The batches themselves (block span, rows, digest sum) are recorded on the
-- target in the batch's own transaction (shardctl.move_batches there), so the
-- target always knows exactly what it holds; these columns add what the
-- metadata side needs.
ALTER TABLE shardctl.move_tables
  -- 'hash' (sorted by routing hash, cursor = hash) or 'block' (physical order, cursor = last heap block).
  ADD COLUMN copy_order text NOT NULL DEFAULT 'hash' CHECK (copy_order IN ('hash', 'block')),
  -- Set when the whole table was copied in one snapshot: its xmin, and the table's row count in it.
  -- Verify compares them with the source now to learn, without hashing every row, that nothing changed.
  ADD COLUMN copy_snapshot_xmin text,
  ADD COLUMN copy_table_rows bigint,
  -- Cleanup of a block-ordered copy: the last batch done, and batches whose rows no longer matched.
  ADD COLUMN cleanup_batch integer NOT NULL DEFAULT -1,
  ADD COLUMN cleanup_mismatches integer NOT NULL DEFAULT 0;
