/**
 * The default pod network: when the runtime's CNI config dir holds no network config, write a bridge
 * network (host-local IPAM, masquerade, host ports through portmap) so pods get an IP out of the box, as
 * k3s does. An existing config is never touched. The runtime watches its config dir and picks it up.
 */
import { mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const DEFAULT_CNI_FILE = '10-kedge-bridge.conflist';
export const DEFAULT_POD_SUBNET = '10.88.0.0/16';

/** The bridge network config kedge writes (CNI spec 0.4.0, which Debian's and upstream plugins accept). */
export function defaultBridgeConfig(subnet = DEFAULT_POD_SUBNET): Record<string, unknown> {
  return {
    cniVersion: '0.4.0',
    name: 'kedge',
    plugins: [
      {
        type: 'bridge',
        bridge: 'kedge0',
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

/** Writes the default bridge config into `confDir` when it has none; returns the file written, if any. */
export async function ensureDefaultCniConfig(confDir: string, subnet?: string): Promise<string | undefined> {
  await mkdir(confDir, { recursive: true, mode: 0o755 });
  const existing = (await readdir(confDir)).filter((f) => /\.(conf|conflist|json)$/.test(f));
  if (existing.length > 0) return undefined;
  const path = join(confDir, DEFAULT_CNI_FILE);
  const tmp = `${path}.tmp`;
  await writeFile(tmp, `${JSON.stringify(defaultBridgeConfig(subnet), null, 2)}\n`, { mode: 0o644 });
  await rename(tmp, path);
  return path;
}
