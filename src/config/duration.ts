const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

export const DURATION_PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/;

/** "5s", "90d", "250ms" → milliseconds; a bare number is milliseconds. Throws on anything else. */
export function parseDuration(text: string | number): number {
  if (typeof text === 'number') return text;
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const match = DURATION_PATTERN.exec(trimmed);
  if (!match) throw new Error(`"${text}" is not a duration (examples: 500ms, 5s, 10m, 12h, 90d, 2w)`);
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}
