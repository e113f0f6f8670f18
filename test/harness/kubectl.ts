import { spawn } from 'node:child_process';

export const KUBECTL = process.env['KEDGE_KUBECTL'] ?? '/usr/bin/kubectl';

export interface KubectlResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run the real kubectl against a kubeconfig; resolves when it exits (never rejects on a non-zero exit). */
export function kubectl(
  kubeconfig: string,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(KUBECTL, [...args], {
      env: { ...process.env, KUBECONFIG: kubeconfig, HOME: process.env['HOME'] ?? '/tmp' },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 60_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** Like kubectl(), but fails with the output when kubectl exits non-zero. */
export async function kubectlOk(
  kubeconfig: string,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<string> {
  const r = await kubectl(kubeconfig, args, options);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}
