-- shardctl metadata schema, version 4: the metadata lock's lease (a fencing token).
-- The advisory lock says who may act; the lease says, to the database itself,
-- whether a write comes from the run that holds the lock now. Taking the lock
-- bumps the generation; every write to the state tables must carry the
-- generation of the current lease (the session setting shardctl.lease), from a
-- session whose lock is still held, or the statement fails with SQLSTATE SHL01.
-- A run that lost its lock and did not notice (its session was terminated, it
-- was paused, its network dropped) therefore cannot change the journal.

CREATE TABLE shardctl.leases (
  name          text PRIMARY KEY,        -- 'metadata'
  generation    bigint NOT NULL,         -- bumped by every run that takes the lock
  holder        text NOT NULL,           -- the holder's application_name: "shardctl shard add by alice@host pid 4242"
  holder_pid    integer NOT NULL,        -- backend pid of the session that holds the advisory lock
  acquired_at   timestamptz NOT NULL,
  heartbeat_at  timestamptz NOT NULL,    -- the holder refreshes it every few seconds (server clock)
  released_at   timestamptz              -- set when the holder let go normally
);

-- The fence. A statement-level trigger: it fires once per statement, even one
-- that changes no row, and costs one primary-key lookup and one pg_locks probe.
-- FOR KEY SHARE here against the FOR UPDATE that a generation bump takes first:
-- a bump waits for writes in flight, and a write waits for a bump in flight
-- and then sees it, so no write of the old holder lands after the new holder
-- has read the state. Heartbeats (an UPDATE of heartbeat_at, FOR NO KEY
-- UPDATE) conflict with neither, so a slow journal write never delays one.
CREATE FUNCTION shardctl.assert_lease() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  claimed text := current_setting('shardctl.lease', true);
  lease   shardctl.leases%ROWTYPE;
BEGIN
  IF claimed IS NULL OR claimed = '' THEN
    RAISE EXCEPTION 'shardctl: % written without the metadata lock (no lease on this session)', TG_TABLE_NAME
      USING ERRCODE = 'SHL01', HINT = 'mutating commands take the lock first; an older shardctl binary does not know about leases';
  END IF;
  SELECT * INTO lease FROM shardctl.leases WHERE name = 'metadata' FOR KEY SHARE;
  IF NOT FOUND OR lease.generation::text <> claimed OR lease.released_at IS NOT NULL THEN
    RAISE EXCEPTION 'shardctl: the metadata lease % is no longer current (now %): another run took the lock', claimed, coalesce(lease.generation::text, 'none')
      USING ERRCODE = 'SHL01';
  END IF;
  -- The holder's lock session must still be alive: a lease whose session ended fences at once,
  -- before any other run has taken over. (1397244756 = 'SHCT', lock 1 = metadata.)
  IF NOT EXISTS (
    SELECT 1 FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.granted AND l.pid = lease.holder_pid
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.classid = 1397244756::bigint::oid AND l.objid = 1::oid AND l.objsubid = 2
  ) THEN
    RAISE EXCEPTION 'shardctl: the metadata lock of lease % was lost (its session, backend pid %, ended)', claimed, lease.holder_pid
      USING ERRCODE = 'SHL01';
  END IF;
  RETURN NULL;
END;
$$;

CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON shardctl.plans
  FOR EACH STATEMENT EXECUTE FUNCTION shardctl.assert_lease();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON shardctl.moves
  FOR EACH STATEMENT EXECUTE FUNCTION shardctl.assert_lease();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON shardctl.move_tables
  FOR EACH STATEMENT EXECUTE FUNCTION shardctl.assert_lease();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON shardctl.ring_epochs
  FOR EACH STATEMENT EXECUTE FUNCTION shardctl.assert_lease();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON shardctl.shards
  FOR EACH STATEMENT EXECUTE FUNCTION shardctl.assert_lease();
