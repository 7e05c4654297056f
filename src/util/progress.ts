/**
 * Progress on stderr: a redrawn bar on a terminal, a line every few seconds
 * otherwise (logs, CI). Silent when quiet.
 */
import { formatBytes } from './format.js';

export interface ProgressOptions {
  label: string;
  total: number;
  /** Units of `total`: 'bytes' shows sizes and a rate; 'items' shows counts. */
  unit?: 'bytes' | 'items';
  quiet?: boolean;
  stream?: NodeJS.WriteStream;
}

export class Progress {
  private done = 0;
  private readonly start = performance.now();
  private lastDraw = 0;
  private detail = '';
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;

  constructor(private readonly opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
  }

  /** Advances by `n` and shows `detail` (e.g. the current tensor). */
  tick(n: number, detail = ''): void {
    this.done += n;
    this.detail = detail;
    const now = performance.now();
    if (now - this.lastDraw >= (this.tty ? 100 : 5000) || this.done >= this.opts.total) {
      this.lastDraw = now;
      this.draw(false);
    }
  }

  /** Elapsed seconds since the start. */
  get seconds(): number {
    return (performance.now() - this.start) / 1000;
  }

  finish(summary?: string): void {
    this.draw(true);
    if (summary && !this.opts.quiet) this.stream.write(summary + '\n');
  }

  private line(): string {
    const { total, unit = 'items', label } = this.opts;
    const frac = total > 0 ? Math.min(1, this.done / total) : 1;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const secs = this.seconds;
    const amount = unit === 'bytes'
      ? `${formatBytes(this.done)}/${formatBytes(total)} ${formatBytes(secs > 0 ? this.done / secs : 0)}/s`
      : `${this.done}/${total}`;
    const rate = secs > 0 ? this.done / secs : 0;
    const eta = rate > 0 && this.done < total ? ` ETA ${formatDuration((total - this.done) / rate)}` : '';
    const perSecond = unit === 'items' && secs > 0 ? ` ${rate >= 10 ? rate.toFixed(0) : rate.toFixed(2)}/s` : '';
    return `${label} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${amount}${perSecond} ${secs.toFixed(1)}s${eta} ${this.detail}`;
  }

  private draw(final: boolean): void {
    if (this.opts.quiet) return;
    const cols = this.stream.columns ?? 120;
    const text = this.line().slice(0, Math.max(20, cols - 1));
    if (this.tty) this.stream.write(`\r\x1b[K${text}${final ? '\n' : ''}`);
    else this.stream.write(text + '\n');
  }
}

/** 75 s -> "1m15s", 4000 s -> "1h06m". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** A counter-style reporter (done/total) over Progress, for loops that know their total only at the first update. */
export function progressReporter(label: string, quiet = false): { update(done: number, total: number): void; end(): void } {
  let bar: Progress | undefined;
  let last = 0;
  return {
    update(done, total) {
      bar ??= new Progress({ label, total, quiet });
      bar.tick(done - last);
      last = done;
    },
    end() {
      bar?.finish();
    },
  };
}
