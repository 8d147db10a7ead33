-- shardctl metadata schema, version 6: samples that `health --record` stores, for
-- `health --history`. One row per check and target per recorded run, pruned by age
-- (health.retention) by the run that records. Not fenced by the lease, unlike the
-- state tables: health observes and must keep working while a rebalance holds the
-- metadata lock, and a sample changes no state another run relies on.

CREATE TABLE shardctl.health_samples (
  id          bigserial PRIMARY KEY,
  taken_at    timestamptz NOT NULL,
  check_name  text NOT NULL,
  target      text NOT NULL,
  status      text NOT NULL CHECK (status IN ('ok', 'warning', 'critical', 'unknown')),
  value       double precision,
  message     text NOT NULL
);
CREATE INDEX health_samples_series ON shardctl.health_samples (check_name, target, taken_at);
CREATE INDEX health_samples_taken_at ON shardctl.health_samples (taken_at);
