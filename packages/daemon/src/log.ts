// Structured logs: one JSON object per line on stderr.
export type Level = 'info' | 'warn' | 'error';

export type Logger = (level: Level, event: string, fields?: Record<string, unknown>) => void;

export function jsonLogger(write: (line: string) => void = (l) => void process.stderr.write(l)): Logger {
  return (level, event, fields = {}) => {
    try {
      write(`${JSON.stringify({ time: new Date().toISOString(), level, event, ...fields })}\n`);
    } catch {
      // logging must never take the daemon down
    }
  };
}
