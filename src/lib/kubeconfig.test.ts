import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { parse as parseYaml } from 'yaml';
import { isKedgeError } from './errors.ts';
import {
  parseKubeconfig,
  readKubeconfig,
  renderKubeconfig,
  resolveKubeconfig,
  writeKubeconfig,
} from './kubeconfig.ts';
import { type CertKeyPair, createCA, issueCertificate } from './pki.ts';

const isConfigError = (err: unknown): boolean => isKedgeError(err, 'KEDGE_CONFIG_INVALID');

let dir: string;
let ca: CertKeyPair;
let admin: CertKeyPair;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kedge-kubeconfig-'));
  ca = await createCA({ commonName: 'kc-ca' });
  admin = (await issueCertificate(ca, {
    commonName: 'kedge-admin',
    organizations: ['system:masters'],
    usage: 'client',
  })) as CertKeyPair;
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeKubeconfig and readKubeconfig', () => {
  test('write a standard kubeconfig with embedded data, mode 0600, that reads back', async () => {
    const path = join(dir, 'admin.kubeconfig');
    await writeKubeconfig(path, {
      server: 'https://127.0.0.1:6443',
      caPem: ca.certPem,
      clientCertPem: admin.certPem,
      clientKeyPem: admin.keyPem,
      user: 'admin',
    });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const raw = parseYaml(await readFile(path, 'utf8')) as Record<string, unknown>;
    assert.equal(raw['apiVersion'], 'v1');
    assert.equal(raw['kind'], 'Config');
    assert.equal(raw['current-context'], 'admin@kedge');
    const cluster = (raw['clusters'] as Array<{ cluster: Record<string, string> }>)[0]?.cluster;
    assert.equal(Buffer.from(cluster?.['certificate-authority-data'] ?? '', 'base64').toString(), ca.certPem);

    const config = await readKubeconfig(path);
    const resolved = resolveKubeconfig(config);
    assert.equal(resolved.context, 'admin@kedge');
    assert.equal(resolved.namespace, 'default');
    assert.equal(resolved.cluster.server, 'https://127.0.0.1:6443');
    assert.equal(resolved.cluster.caPem, ca.certPem);
    assert.equal(resolved.cluster.insecureSkipTlsVerify, false);
    assert.equal(resolved.user.clientCertPem, admin.certPem);
    assert.equal(resolved.user.clientKeyPem, admin.keyPem);
    assert.equal(resolved.user.token, undefined);
  });

  test('a token user with a named context and namespace', async () => {
    const path = join(dir, 'token.kubeconfig');
    await writeKubeconfig(path, {
      server: 'https://kedge.example:6443',
      caPem: ca.certPem,
      token: 'kedge_abc123.secret',
      user: 'dev',
      cluster: 'edge',
      context: 'dev-ctx',
      namespace: 'apps',
    });
    const resolved = resolveKubeconfig(await readKubeconfig(path));
    assert.equal(resolved.context, 'dev-ctx');
    assert.equal(resolved.cluster.name, 'edge');
    assert.equal(resolved.user.token, 'kedge_abc123.secret');
    assert.equal(resolved.namespace, 'apps');
    assert.throws(() => resolveKubeconfig(parsedEmpty(), 'nope'), isConfigError);
  });

  test('file references resolve relative to the kubeconfig folder', async () => {
    await writeFile(join(dir, 'ref-ca.crt'), ca.certPem);
    await writeFile(join(dir, 'ref-admin.crt'), admin.certPem);
    await writeFile(join(dir, 'ref-admin.key'), admin.keyPem);
    const path = join(dir, 'ref.kubeconfig');
    await writeFile(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: c',
        '  cluster: { server: "https://h:1", certificate-authority: ref-ca.crt }',
        'users:',
        '- name: u',
        '  user: { client-certificate: ref-admin.crt, client-key: ref-admin.key }',
        'contexts:',
        '- name: x',
        '  context: { cluster: c, user: u }',
        'current-context: x',
      ].join('\n'),
    );
    const resolved = resolveKubeconfig(await readKubeconfig(path));
    assert.equal(resolved.cluster.caPem, ca.certPem);
    assert.equal(resolved.user.clientKeyPem, admin.keyPem);
  });

  test('refuses options kubectl could not use', () => {
    const base = { server: 'https://h:1', caPem: ca.certPem, user: 'u', token: 't' };
    assert.throws(() => renderKubeconfig({ ...base, server: 'not a url' }), isConfigError);
    assert.throws(() => renderKubeconfig({ ...base, server: 'ftp://h' }), isConfigError);
    assert.throws(() => renderKubeconfig({ ...base, caPem: 'x' }), isConfigError);
    assert.throws(
      () => renderKubeconfig({ server: 'https://h:1', caPem: ca.certPem, user: 'u' }),
      isConfigError,
    );
    assert.throws(() => renderKubeconfig({ ...base, clientCertPem: admin.certPem }), isConfigError);
    assert.throws(() => renderKubeconfig({ ...base, user: ' ' }), isConfigError);
  });

  test('bad content gives KEDGE_CONFIG_INVALID naming the problem', async () => {
    const caData = Buffer.from(ca.certPem).toString('base64');
    const good = {
      clusters: [{ name: 'c', cluster: { server: 'https://h:1', 'certificate-authority-data': caData } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    };
    assert.equal((await parseKubeconfig(JSON.stringify(good))).currentContext, 'x');
    const cases: Array<[string, string, RegExp]> = [
      ['not yaml', 'a: [', /not valid YAML/],
      ['a list', '[1, 2]', /mapping/],
      ['wrong kind', JSON.stringify({ ...good, kind: 'Pod' }), /kind must be Config/],
      ['clusters not a list', JSON.stringify({ ...good, clusters: {} }), /clusters must be a list/],
      [
        'server missing',
        JSON.stringify({ ...good, clusters: [{ name: 'c', cluster: {} }] }),
        /clusters\[0\]\.cluster\.server is required/,
      ],
      [
        'bad base64',
        JSON.stringify({
          ...good,
          clusters: [{ name: 'c', cluster: { server: 'https://h', 'certificate-authority-data': '***' } }],
        }),
        /not base64/,
      ],
      [
        'ca not a certificate',
        JSON.stringify({
          ...good,
          clusters: [
            { name: 'c', cluster: { server: 'https://h', 'certificate-authority-data': 'aGVsbG8=' } },
          ],
        }),
        /not a PEM certificate/,
      ],
      [
        'cert without key',
        JSON.stringify({
          ...good,
          users: [
            { name: 'u', user: { 'client-certificate-data': Buffer.from(admin.certPem).toString('base64') } },
          ],
        }),
        /both a client certificate and a client key/,
      ],
      [
        'context names no cluster',
        JSON.stringify({ ...good, contexts: [{ name: 'x', context: { cluster: 'zz', user: 'u' } }] }),
        /names no cluster/,
      ],
      [
        'current-context names nothing',
        JSON.stringify({ ...good, 'current-context': 'zz' }),
        /names no context/,
      ],
      ['duplicate user', JSON.stringify({ ...good, users: [...good.users, ...good.users] }), /duplicated/],
      [
        'missing file reference',
        JSON.stringify({
          ...good,
          clusters: [
            { name: 'c', cluster: { server: 'https://h', 'certificate-authority': '/nonexistent/ca.crt' } },
          ],
        }),
        /cannot be read/,
      ],
    ];
    for (const [name, text, message] of cases) {
      await assert.rejects(parseKubeconfig(text, 'test.kubeconfig'), (err: unknown) => {
        assert.ok(isConfigError(err), name);
        assert.match((err as Error).message, message, name);
        assert.match((err as Error).message, /^test\.kubeconfig: /, name);
        return true;
      });
    }
    await assert.rejects(readKubeconfig(join(dir, 'missing.kubeconfig')), isConfigError);
  });
});

function parsedEmpty(): Parameters<typeof resolveKubeconfig>[0] {
  return { clusters: [], users: [], contexts: [] };
}

// The real kubectl accepts our CA, server certificate and client certificate (or token).
const kubectl = '/usr/bin/kubectl';
const haveKubectl = existsSync(kubectl);
describe('kubectl with a written kubeconfig', { skip: !haveKubectl && process.env['CI'] !== 'true' }, () => {
  let server: Server;
  let url: string;
  const seen: Array<{ path: string; cn: string | undefined; authorization: string | undefined }> = [];

  before(async () => {
    const serving = await issueCertificate(ca, {
      commonName: 'kedge-server',
      usage: 'server',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
    });
    server = createServer(
      {
        cert: serving.certPem,
        key: serving.keyPem ?? '',
        ca: ca.certPem,
        requestCert: true,
        rejectUnauthorized: false,
      },
      (req, res) => {
        const socket = req.socket as TLSSocket;
        const subjectCn = socket.authorized ? socket.getPeerCertificate().subject?.CN : undefined;
        const cn = Array.isArray(subjectCn) ? subjectCn.join(',') : subjectCn;
        seen.push({ path: req.url ?? '', cn, authorization: req.headers.authorization });
        if (cn === undefined && req.headers.authorization !== 'Bearer kedge_tok123.abcdefghijklmnop1234') {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 401 }));
          return;
        }
        if (req.url?.split('?')[0] === '/version') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              major: '1',
              minor: '32',
              gitVersion: 'v1.32.0-kedge',
              gitCommit: '0000000000000000000000000000000000000000',
              gitTreeState: 'clean',
              buildDate: '2025-01-01T00:00:00Z',
              goVersion: 'go1.23',
              compiler: 'gc',
              platform: 'linux/amd64',
            }),
          );
          return;
        }
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 404 }));
      },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  function runKubectl(kubeconfig: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(
        kubectl,
        ['--kubeconfig', kubeconfig, 'version', '-o', 'json', '--request-timeout=20s'],
        { env: { PATH: process.env['PATH'] ?? '', HOME: dir }, timeout: 60_000 },
        (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  test('kubectl version reaches /version with the admin client certificate', async () => {
    const path = join(dir, 'kubectl-admin.kubeconfig');
    await writeKubeconfig(path, {
      server: url,
      caPem: ca.certPem,
      clientCertPem: admin.certPem,
      clientKeyPem: admin.keyPem,
      user: 'admin',
    });
    seen.length = 0;
    const result = await runKubectl(path);
    assert.equal(result.code, 0, result.stderr);
    const out = JSON.parse(result.stdout) as { serverVersion?: { gitVersion?: string } };
    assert.equal(out.serverVersion?.gitVersion, 'v1.32.0-kedge');
    assert.ok(
      seen.some((s) => s.path.startsWith('/version') && s.cn === 'kedge-admin'),
      JSON.stringify(seen),
    );
  });

  test('kubectl version works with a token user', async () => {
    const path = join(dir, 'kubectl-token.kubeconfig');
    await writeKubeconfig(path, {
      server: url,
      caPem: ca.certPem,
      token: 'kedge_tok123.abcdefghijklmnop1234',
      user: 'dev',
    });
    seen.length = 0;
    const result = await runKubectl(path);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(
      seen.some(
        (s) =>
          s.path.startsWith('/version') &&
          s.cn === undefined &&
          s.authorization === 'Bearer kedge_tok123.abcdefghijklmnop1234',
      ),
      JSON.stringify(seen),
    );
  });

  test('kubectl refuses the server when the kubeconfig names another CA', async () => {
    const other = await createCA({ commonName: 'not-ours' });
    const path = join(dir, 'kubectl-wrong-ca.kubeconfig');
    await writeKubeconfig(path, {
      server: url,
      caPem: other.certPem,
      clientCertPem: admin.certPem,
      clientKeyPem: admin.keyPem,
      user: 'admin',
    });
    const result = await runKubectl(path);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /certificate/i);
  });
});
