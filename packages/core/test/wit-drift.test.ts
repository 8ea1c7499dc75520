// The TS types are generated from wit/: a check fails when they drift.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, tempDir } from './helpers.js';

const gen = (...args: string[]) => spawnSync(process.execPath, [join(repoRoot, 'scripts/gen.mjs'), '--check', ...args], { encoding: 'utf8' });

describe('generated types', () => {
  it('match the committed WIT', () => {
    const r = gen();
    expect(r.stderr).toContain('generated types match wit/');
    expect(r.status).toBe(0);
  });

  it('are reported as drifted when the WIT changes', () => {
    const wit = join(tempDir(), 'driver');
    cpSync(join(repoRoot, 'wit/driver'), wit, { recursive: true });
    const types = join(wit, 'types.wit');
    writeFileSync(types, readFileSync(types, 'utf8').replace('    pm-suspended,\n  }', '    pm-suspended,\n    hibernated,\n  }'));
    const r = gen('--wit', wit);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/generated types drifted from wit\/: .*virtkit-driver-types\.d\.ts/);
  });
});
