// Shared by the benchmarks: quantiles, and the comparison table they print
// (metric | virtkit | floor/baseline | ratio | target | met?).

export const median = (xs) => quantile(xs, 0.5);

export function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return s[lo] + (s[hi] - s[lo]) * (i - lo);
}

/** A value with its unit, to a sensible number of digits; rates as thousands-separated /s. */
export function fmt(v, unit) {
  if (v === undefined || v === null) return '—';
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return String(v);
  if (unit === '/s') return `${Math.round(v).toLocaleString('en-US')}/s`;
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : v >= 1 ? 2 : 3;
  return `${v.toFixed(digits)} ${unit}`;
}

export function formatTable(rows, fmt, ratioDigits) {
  const head = ['metric', 'virtkit', 'floor/baseline', 'ratio', 'target', 'met?'];
  const body = rows.map((r) =>
    r.error
      ? [r.metric, 'ERROR', '—', '—', '—', 'error']
      : [
          r.metric,
          fmt(r.virtkit, r.unit),
          r.floor === undefined ? '—' : fmt(r.floor, r.unit),
          r.ratio === undefined ? '—' : `${r.ratio >= 100 ? r.ratio.toFixed(0) : r.ratio.toFixed(ratioDigits)}x`,
          r.targetText ?? '—',
          r.met === undefined ? '—' : r.met ? 'yes' : 'no',
        ],
  );
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const right = [false, true, true, true, true, false];
  const line = (cells) => cells.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('-|-'), ...body.map(line)].join('\n');
}
