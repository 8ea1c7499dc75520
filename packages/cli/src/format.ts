// Output helpers: virsh-like tables and key/value blocks, state names, JSON with bigint.
import type { DomainEvent, DomainState, StateReason } from '@virtkit/core';

/** "shut-off" -> "shut off", as virsh prints states. */
export function stateText(state: DomainState, reason?: StateReason): string {
  const s = state.replace(/-/g, ' ');
  return reason ? `${s} (${reason})` : s;
}

/** A virsh-style table: a header, a dashed rule, rows; columns three spaces apart. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => ` ${cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('   ')}`.trimEnd();
  const rule = '-'.repeat(widths.reduce((a, w) => a + w, 0) + 3 * (widths.length - 1) + 2);
  return [line(headers), rule, ...rows.map(line)].join('\n');
}

/** "Key:" padded so that values line up, one pair per line. */
export function keyValues(pairs: Array<[string, string]>): string {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 2;
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`).join('\n');
}

/** JSON where bigint becomes a number and typed arrays become arrays. */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(
    value,
    (_key, v: unknown) => {
      if (typeof v === 'bigint') return Number(v);
      if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<number>);
      return v;
    },
    indent,
  );
}

/** "0-7" for [0..7], "0-3,8,10-11" otherwise. */
export function cpuRanges(cpus: ArrayLike<number>): string {
  const sorted = Array.from(cpus).sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    out.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

/** `SEQ TIME DOMAIN KIND REASON`, TIME in ISO 8601 UTC. */
export function eventLine(e: DomainEvent): string {
  return `${e.seq} ${new Date(e.time).toISOString()} ${e.domain} ${e.kind} ${e.reason}`;
}

/** "1 problem", "3 problems". */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
