import { type Logger, pino } from 'pino';

export type { Logger };

/** The root logger: JSON lines on stdout. Built once in `cli`; components get `logger.child({ component })`. */
export function createRootLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino({
    level: options.level ?? process.env['KEDGE_LOG_LEVEL'] ?? 'info',
    base: { name: options.name ?? 'kedge' },
    redact: { paths: ['token', '*.token', 'authorization', '*.authorization'], censor: '[redacted]' },
  });
}

/** A logger that drops everything, for tests and benchmarks. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
