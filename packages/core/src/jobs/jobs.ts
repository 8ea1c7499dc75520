// Jobs: operations on one domain run one at a time, in order; operations on different
// domains run concurrently. Each job reports progress and can be cancelled.
import { VirtkitError } from '../errors.js';

export interface JobInfo {
  id: number;
  domain: string;
  operation: string;
  state: 'queued' | 'running';
  percent: number;
  message: string;
  startedAt: number;
}

export interface Job extends JobInfo {
  cancel(): void;
}

export interface JobOptions {
  signal?: AbortSignal;
  onProgress?(percent: number, message: string): void;
}

export interface JobContext {
  signal: AbortSignal;
  progress(percent: number, message: string): void;
}

export class JobQueue {
  private tails = new Map<string, Promise<void>>();
  private active = new Map<number, Job>();
  private nextId = 1;

  list(): JobInfo[] {
    return [...this.active.values()].map(({ cancel: _c, ...info }) => ({ ...info }));
  }

  get(id: number): Job | undefined {
    return this.active.get(id);
  }

  run<T>(domain: string, operation: string, opts: JobOptions, work: (ctx: JobContext) => Promise<T>): Promise<T> {
    const ac = new AbortController();
    const onAbort = () => ac.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    const job: Job = {
      id: this.nextId++, domain, operation, state: 'queued', percent: 0, message: '', startedAt: Date.now(),
      cancel: () => ac.abort(),
    };
    this.active.set(job.id, job);
    const prev = this.tails.get(domain) ?? Promise.resolve();
    const result = prev.then(async () => {
      if (ac.signal.aborted) throw new VirtkitError('CANCELLED', `${operation} ${domain} cancelled before it started`);
      job.state = 'running';
      return work({
        signal: ac.signal,
        progress: (percent, message) => {
          job.percent = percent;
          job.message = message;
          opts.onProgress?.(percent, message);
        },
      });
    });
    const settled: Promise<void> = result.then(() => {}, () => {}).finally(() => {
      this.active.delete(job.id);
      opts.signal?.removeEventListener('abort', onAbort);
      if (this.tails.get(domain) === settled) this.tails.delete(domain);
    });
    this.tails.set(domain, settled);
    return result;
  }
}
