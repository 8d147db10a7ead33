-- shardctl metadata schema, version 1: shard registry, ring epochs, audit log.
-- Applied by `shardctl init`; never edit an applied file (its checksum is recorded).

CREATE TABLE shardctl.shards (
  id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$'),
  -- The connection URL without its password: passwords stay in config or the environment.
  url         text NOT NULL,
  weight      double precision NOT NULL CHECK (weight >= 0),
  -- pending: registered, not in the ring yet; active: in the ring; draining: leaving; retired: gone.
  state       text NOT NULL CHECK (state IN ('pending', 'active', 'draining', 'retired')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every ring the deployment has had. The current ring is the highest epoch;
-- members is the exact input of the ring: [{"id": "...", "weight": 1}, ...].
CREATE TABLE shardctl.ring_epochs (
  epoch       bigint PRIMARY KEY,
  vnodes      integer NOT NULL CHECK (vnodes > 0),
  members     jsonb NOT NULL,
  reason      text NOT NULL,
  created_by  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shardctl.audit_log (
  id           bigserial PRIMARY KEY,
  actor        text NOT NULL,
  command      text NOT NULL,
  command_line text NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  -- running until it ends; then success, failed, lock-held, interrupted or usage.
  outcome      text NOT NULL DEFAULT 'running',
  exit_code    integer,
  summary      jsonb
);
CREATE INDEX audit_log_started_at ON shardctl.audit_log (started_at DESC);
