import type { AuditRecord } from '../../metadata/store.js';
import { renderTable, statusMark } from './table.js';

export function renderAudit(r: { entries: AuditRecord[] }): string {
  if (!r.entries.length) return 'no audit entries';
  return renderTable(
    ['id', 'started', 'seconds', 'actor', 'outcome', 'exit', 'command line'],
    r.entries.map((e) => [
      e.id,
      e.startedAt.toISOString().replace('T', ' ').slice(0, 19),
      e.finishedAt ? ((e.finishedAt.getTime() - e.startedAt.getTime()) / 1000).toFixed(1) : '-',
      e.actor,
      statusMark(e.outcome),
      e.exitCode ?? '-',
      e.commandLine,
    ]),
  );
}
