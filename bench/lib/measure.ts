/** What every benchmark measures with: a table of rows, process RSS and CPU from /proc, percentiles. */
import { readFile } from 'node:fs/promises';

export interface Row {
  name: string;
  value: number;
  unit: string;
}

/** Rows printed as they are recorded (name padded to `width`), kept for the results file. */
export function createRecorder(width = 66): {
  rows: Row[];
  record: (name: string, value: number, unit: string) => void;
} {
  const rows: Row[] = [];
  return {
    rows,
    record(name, value, unit) {
      const v = Math.round(value * 100) / 100;
      rows.push({ name, value: v, unit });
      console.log(`${name.padEnd(width)} ${String(v).padStart(12)} ${unit}`);
    },
  };
}

/** VmRSS of a process in MiB. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`No VmRSS in /proc/${pid}/status`);
  return Number(kb) / 1024;
}

/** CPU seconds (user + system) a process has used so far. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name: utime and stime are the 12th and 13th; USER_HZ is 100 on Linux.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The p-th percentile of an ascending array (nearest rank); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  return (
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN
  );
}
