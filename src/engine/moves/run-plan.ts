import { parseDuration } from '../../config/duration.js';
import type { ShardctlConfig } from '../../config/schema.js';
import { InterruptedError, LockLostError, OperationError } from '../../errors.js';
import type { RunInfo } from '../../metadata/run-info.js';
import type { MetadataStore } from '../../metadata/store.js';
import { MoveEnv } from './env.js';
import { executePlan, type ExecuteOptions, type ExecutionReport, type MoveEvent } from './execute.js';
import { newPlanId, type PlanDocument } from './plan.js';
import type { PhaseMeter } from './phase-meter.js';

/** Flags every data-moving command shares (--parallel, --max-duration, …). */
export interface MoveRunOptions {
  parallel?: number;
  perShard?: number;
  maxRowsPerSecond?: number;
  maxDurationMs?: number;
  maxRows?: number;
  exact?: boolean;
  /** Move offline (today's copy, verify, switch; for a maintenance window), whatever migration.online says. */
  offline?: boolean;
  /** Overrides migration.fenceTimeout. */
  fenceTimeoutMs?: number;
  /** Where the run's time goes; the caller may have timed the plan and the preparation into it. */
  meter?: PhaseMeter;
  onEvent?: (event: MoveEvent) => void;
}

export async function moveEnv(config: ShardctlConfig, store: MetadataStore, run: RunInfo, extraUrls: Record<string, string> = {}): Promise<MoveEnv> {
  return new MoveEnv(config, store, run, await store.listShards(), extraUrls);
}

export function executeOptions(config: ShardctlConfig, run: RunInfo, options: MoveRunOptions): ExecuteOptions {
  return {
    parallel: options.parallel ?? config.migration.parallel,
    perShard: options.perShard ?? 2,
    batchSize: config.migration.batchSize,
    maxRowsPerSecond: options.maxRowsPerSecond ?? config.migration.maxRowsPerSecond,
    ...(options.maxDurationMs !== undefined ? { maxDurationMs: options.maxDurationMs } : {}),
    ...(options.maxRows !== undefined ? { maxRows: options.maxRows } : {}),
    ...(run.signal ? { signal: run.signal } : {}),
    ...(run.lease ? { lease: run.lease } : {}),
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    ...(options.meter ? { meter: options.meter } : {}),
    online: {
      fenceTimeoutMs: options.fenceTimeoutMs ?? parseDuration(config.migration.fenceTimeout),
      lockTimeoutMs: parseDuration(config.migration.lockTimeout),
    },
  };
}

/** No two plans at once: they could move the same rows. */
export async function refuseIfPlanInProgress(env: MoveEnv): Promise<void> {
  const active = await env.journal.activePlan();
  if (active) {
    throw new OperationError(`plan ${active.id} (${active.kind}) is ${active.state}: finish it with \`shard resume\`${active.state !== 'switched' ? ` or undo it with \`shard abort ${active.id}\`` : ''} first`);
  }
}

/**
 * Journals a reviewed plan and runs it. The plan is bound to the epoch it was
 * made from: if the ring changed since, it is refused.
 */
export async function startPlan(env: MoveEnv, doc: PlanDocument, options: MoveRunOptions): Promise<ExecutionReport> {
  const current = await env.currentRing();
  if (current.epoch !== doc.fromEpoch) {
    throw new OperationError(`the plan was made from ring epoch ${doc.fromEpoch}, but the ring is at epoch ${current.epoch} now: make a new plan`);
  }
  await refuseIfPlanInProgress(env);
  options.onEvent?.({ type: 'plan', plan: doc });
  const id = newPlanId(doc.fromEpoch);
  const ringChange = JSON.stringify(doc.targetRing) !== JSON.stringify({ vnodes: current.vnodes, members: current.members });
  await env.journal.createPlan({
    id,
    kind: doc.kind,
    fromEpoch: doc.fromEpoch,
    targetRing: doc.targetRing,
    options: {
      ...(doc.addShard ? { addShard: doc.addShard.id } : {}),
      ...(doc.removeShard ? { removeShard: doc.removeShard } : {}),
      ringChange,
      online: !options.offline && env.config.migration.online,
    },
    createdBy: env.run.actor,
    tables: env.tables.map((t) => t.name),
    moves: doc.moves.map((m) => ({ source: m.source, target: m.target, mode: m.mode, ranges: m.ranges, estRows: m.estRows, estBytes: m.estBytes })),
  });
  if (doc.removeShard) await env.journal.setShardState(doc.removeShard, 'draining');
  return finishRun(await executePlan(env, id, executeOptions(env.config, env.run, options)));
}

export async function resumePlan(env: MoveEnv, planId: string, options: MoveRunOptions): Promise<ExecutionReport> {
  return finishRun(await executePlan(env, planId, executeOptions(env.config, env.run, options)));
}

/** A failed run exits 1 and an interrupted one 130, both with the report attached; partial and done return. */
function finishRun(report: ExecutionReport): ExecutionReport {
  if (report.status === 'lock-lost') {
    // runMutation words the message (why the lock was lost); the report rides along.
    throw new LockLostError(`plan ${report.planId} stopped: the metadata lock was lost`, { data: report });
  }
  if (report.status === 'failed') {
    const errors = report.moves.filter((m) => m.error).map((m) => `move ${m.moveNo}: ${m.error}`);
    throw new OperationError(`plan ${report.planId} failed; the journal has it: \`shard resume\` continues once the cause is fixed`, { details: errors, data: report });
  }
  if (report.status === 'interrupted') {
    throw new InterruptedError(`interrupted at a batch boundary; plan ${report.planId} is journaled: \`shard resume\` continues`, { data: report });
  }
  return report;
}
