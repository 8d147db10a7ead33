import type { HealthReport } from '../../engine/health/types.js';
import type { CommandContext } from '../context.js';

/** The report in the asked-for format: one value, four renderings. */
export async function renderReport(ctx: CommandContext, report: HealthReport, format: 'table' | 'json' | 'prometheus' | 'nagios'): Promise<string> {
  switch (format) {
    case 'json': {
      const { formatJson } = await import('../render/json.js');
      return formatJson({ ok: true, command: 'health', data: report });
    }
    case 'prometheus': {
      const { renderPrometheus } = await import('../render/health-prometheus.js');
      return renderPrometheus(report);
    }
    case 'nagios': {
      const { renderNagios } = await import('../render/health-nagios.js');
      return renderNagios(report);
    }
    default: {
      const { renderHealth } = await import('../render/health.js');
      return renderHealth(report, { verbose: ctx.global.verbose });
    }
  }
}
