import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/engine/init.js';
import { BIN } from '../support/cli.js';
import { createDeployment, testRun, type TestDeployment } from '../support/deployment.js';

/*
 * The CLI's contract with pipes: the whole result reaches a reader of any
 * speed before the process exits, a reader that closes early ends the run
 * quietly, and a write error is an error exit. Run through bash, as a DBA's
 * shell or a CI step would.
 */

interface Piped {
  /** What the reader got (its own stdout). */
  out: string;
  /** The exit code of shardctl itself (PIPESTATUS[0]). */
  status: number;
  stderr: string;
}

async function piped(d: TestDeployment, args: string, reader: string): Promise<Piped> {
  const script = `node ${BIN} -c '${d.configPath}' ${args} 2>"$ERRFILE" | ${reader}; echo "status=\${PIPESTATUS[0]}" >&2`;
  const errFile = path.join(d.dir, `stderr-${Date.now()}-${Math.random().toString(16).slice(2)}`);
  const r = await execa('bash', ['-c', script], { reject: false, env: { ...process.env, ERRFILE: errFile, CI: undefined, NO_COLOR: undefined } as Record<string, string | undefined>, extendEnv: false, stdin: 'ignore' });
  const status = Number(/status=(\d+)/.exec(String(r.stderr))?.[1] ?? -1);
  const stderr = await readFile(errFile, 'utf8').catch(() => '');
  await rm(errFile, { force: true });
  return { out: String(r.stdout), status, stderr };
}

describe('output to pipes', () => {
  let d: TestDeployment;
  beforeAll(async () => {
    // 4 shards × 50,000 points: a ring of 200,000 points, several MB in every format.
    d = await createDeployment({ shards: 4, redis: false, tables: false, vnodes: 50_000 });
    await init(d.config, testRun());
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('a slow reader gets every byte of several MB, in every format, and shardctl exits 0', async () => {
    for (const format of ['csv', 'json', 'sql']) {
      const file = path.join(d.dir, `ring.${format}`);
      const direct = await execa('bash', ['-c', `node ${BIN} -c '${d.configPath}' shard ring --format ${format} > '${file}'`], { reject: false, stdin: 'ignore' });
      expect(direct.exitCode).toBe(0);
      const expected = (await readFile(file)).length;
      expect(expected).toBeGreaterThan(3_000_000);
      const slow = await piped(d, `shard ring --format ${format}`, '(sleep 1; wc -c)');
      expect(slow.status, slow.stderr).toBe(0);
      expect(Number(slow.out.trim()), `${format}: bytes through a slow pipe`).toBe(expected);
    }
    const json = await piped(d, '--json shard ring --format json', `node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(JSON.parse(j.data.text).points.length)})'`);
    expect(json.status, json.stderr).toBe(0);
    expect(Number(json.out.trim())).toBe(200_000);
  });

  it('a reader that closes early (| head -1) ends the run quietly with exit 0', async () => {
    const r = await piped(d, 'shard ring --format csv', 'head -1');
    expect(r.out.trim()).toBe('point,shard_id');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('a write error on stdout is an error exit (/dev/full)', async () => {
    const r = await execa('bash', ['-c', `node ${BIN} -c '${d.configPath}' shard ring --format csv > /dev/full`], { reject: false, stdin: 'ignore' });
    expect(r.exitCode).toBe(1);
    expect(String(r.stderr)).toMatch(/^shardctl: cannot write the result to stdout: .*ENOSPC/m);
  });
});
