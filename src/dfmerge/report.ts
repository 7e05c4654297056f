/**
 * The DF-Merge report: per-task accuracy of every model and merge (Markdown and
 * JSON) and an SVG plot of the objective per evaluation with the best so far.
 */
import type { JournalEvaluation } from './journal.js';

export interface ReportRow {
  /** e.g. "base", "expert: reverse", "task arithmetic (λ=0.4)", "DF-Merge". */
  name: string;
  validation: Record<string, number>;
  test?: Record<string, number>;
}

export interface Report {
  tasks: string[];
  rows: ReportRow[];
  best: { lambda: number[]; objective: number; evaluation: number };
  evaluations: number;
  seconds: number;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '–' : (100 * x).toFixed(1));

export function markdownTable(tasks: readonly string[], rows: readonly ReportRow[], split: 'validation' | 'test'): string {
  const head = `| model | ${tasks.join(' | ')} | average |`;
  const rule = `|---|${tasks.map(() => '---:').join('|')}|---:|`;
  const body = rows.map((r) => {
    const s = split === 'test' ? r.test : r.validation;
    if (!s) return undefined;
    return `| ${r.name} | ${tasks.map((t) => pct(s[t])).join(' | ')} | ${pct(mean(tasks.map((t) => s[t] ?? NaN)))} |`;
  }).filter((x): x is string => x !== undefined);
  return [head, rule, ...body].join('\n');
}

export function markdownReport(r: Report): string {
  const out = [
    '# DF-Merge report',
    '',
    `Best λ = [${r.best.lambda.map((x) => x.toFixed(3)).join(', ')}] (evaluation ${r.best.evaluation + 1} of ${r.evaluations}), validation objective ${pct(r.best.objective)}%; ${r.seconds.toFixed(0)} s in all.`,
    '',
    '## Validation accuracy (%)',
    '',
    markdownTable(r.tasks, r.rows, 'validation'),
  ];
  if (r.rows.some((x) => x.test)) out.push('', '## Test accuracy (%)', '', markdownTable(r.tasks, r.rows, 'test'));
  return out.join('\n') + '\n';
}

/** SVG line plot: objective per evaluation (dots; failed ones as crosses), best so far (line), initial phase shaded. */
export function objectiveSvg(evals: readonly JournalEvaluation[], nInitial: number): string {
  const W = 640, H = 360, L = 56, R = 16, T = 28, B = 44;
  const ok = evals.filter((e) => !e.failed && e.objective !== null);
  const ys = ok.map((e) => e.objective!);
  let lo = Math.min(...ys, 1), hi = Math.max(...ys, 0);
  if (!(hi > lo)) { lo = 0; hi = 1; }
  const pad = (hi - lo) * 0.08;
  lo = Math.max(0, lo - pad); hi = Math.min(1, hi + pad);
  if (!(hi > lo)) { lo = 0; hi = 1; }
  const n = Math.max(evals.length, 2);
  const x = (i: number) => L + ((W - L - R) * i) / (n - 1);
  const y = (v: number) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  const initEnd = Math.min(nInitial, evals.length) - 0.5;
  if (initEnd > 0) parts.push(`<rect x="${L}" y="${T}" width="${Math.max(0, x(initEnd) - L)}" height="${H - T - B}" fill="#eef2f7"/>`);
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    parts.push(`<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${(100 * v).toFixed(1)}</text>`);
  }
  parts.push(`<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#333"/><line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#333"/>`);
  const step = Math.max(1, Math.ceil(evals.length / 10));
  for (let i = 0; i < evals.length; i += step) parts.push(`<text x="${x(i)}" y="${H - B + 16}" text-anchor="middle">${i + 1}</text>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">evaluation</text>`);
  parts.push(`<text x="14" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(T + H - B) / 2})">mean validation accuracy (%)</text>`);
  parts.push(`<text x="${L}" y="18">DF-Merge objective per evaluation (shaded: ${nInitial} random initial points)</text>`);
  let best = -Infinity;
  const line: string[] = [];
  evals.forEach((e, i) => {
    if (!e.failed && e.objective !== null) best = Math.max(best, e.objective);
    if (best > -Infinity) line.push(`${x(i).toFixed(1)},${y(best).toFixed(1)}`);
  });
  if (line.length) parts.push(`<polyline points="${line.join(' ')}" fill="none" stroke="#d62728" stroke-width="2"/>`);
  evals.forEach((e, i) => {
    if (e.failed || e.objective === null) {
      parts.push(`<text x="${x(i)}" y="${H - B - 4}" text-anchor="middle" fill="#999">×</text>`);
    } else {
      parts.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(e.objective).toFixed(1)}" r="3.5" fill="#1f77b4"/>`);
    }
  });
  parts.push(`<text x="${W - R}" y="18" text-anchor="end" fill="#d62728">— best so far</text>`);
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
