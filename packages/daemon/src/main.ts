// The virtkitd command line: virtkitd [--config PATH]
import { VirtkitError } from '@virtkit/core';
import { defaultConfigPath, loadDaemonConfig } from './config.js';
import { Daemon } from './daemon.js';
import { jsonLogger, type Logger } from './log.js';

const USAGE = `usage: virtkitd [--config PATH]

Serves virtkit nodes over mutual TLS and local unix sockets (see the @virtkit/daemon README).
  --config PATH  the config file (default: ${defaultConfigPath()})
  --help         this text`;

export async function main(argv: string[], log: Logger = jsonLogger()): Promise<number> {
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (a === '--config' && i + 1 < argv.length) configPath = argv[++i];
    else if (a.startsWith('--config=')) configPath = a.slice('--config='.length);
    else {
      process.stderr.write(`virtkitd: unexpected argument ${JSON.stringify(a)}\n${USAGE}\n`);
      return 2;
    }
  }
  const file = configPath ?? defaultConfigPath();
  let daemon: Daemon | undefined;
  // Listened for from the start: autostarting the configured nodes' domains may take a while.
  // `on`, not `once`: signal-exit (loaded by a dependency) re-raises the signal
  // when, at its turn, it finds itself the only listener left, which a spent `once` would be.
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    process.on('SIGTERM', () => resolve('SIGTERM'));
    process.on('SIGINT', () => resolve('SIGINT'));
  });
  // A signal during start (autostart under way) stops the daemon as soon as it can.
  void signal.then(() => daemon?.stop());
  try {
    const config = await loadDaemonConfig(file, configPath !== undefined);
    log('info', 'start', { pid: process.pid, config: config.file ?? null, identities: config.access.identities.length });
    daemon = new Daemon(config, log);
    await daemon.start();
  } catch (e) {
    log('error', 'start-failed', { code: VirtkitError.is(e) ? e.code : 'INTERNAL', message: e instanceof Error ? e.message : String(e) });
    await daemon?.stop();
    return 1;
  }
  log('info', 'shutdown', { signal: await signal });
  await daemon.stop();
  log('info', 'stopped', {});
  return 0;
}
