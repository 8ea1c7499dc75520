// Messages between the main thread and a plugin's worker.
import type { DriverDescription, OperationRequest, Outcome } from '../types.js';
import type { WatchNotice } from './effects.js';

export interface WireError {
  code: string;
  message: string;
}

export type ToWorker =
  | { t: 'run'; id: number; request: OperationRequest }
  | { t: 'cancel'; id: number }
  | { t: 'modules'; modules: Record<string, WebAssembly.Module> | undefined }
  | { t: 'close' };

export type FromWorker =
  | { t: 'ready'; description: DriverDescription }
  | { t: 'init-error'; error: WireError }
  | { t: 'log'; level: string; message: string }
  | { t: 'progress'; id: number; percent: number; message: string }
  | { t: 'watch'; notice: WatchNotice }
  | { t: 'compiled'; modules: Record<string, WebAssembly.Module> }
  | { t: 'done'; id: number; outcome: Outcome }
  | { t: 'failed'; id: number; error: WireError };
