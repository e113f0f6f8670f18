// Bad input over the API: clear Status errors, the server stays up, nothing is stored.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { removeDir, type ServerProcess, startServerProcess } from './harness/server.ts';

interface Reply {
  readonly status: number;
  readonly body: string;
}

describe('API bad input', () => {
  let server: ServerProcess;
  let tls: { ca: string; cert: string; key: string };
  const call = (
    method: string,
    path: string,
    body?: string | Buffer,
    contentType = 'application/json',
  ): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = request(
        `${server.url}${path}`,
        { method, ...tls, headers: body === undefined ? {} : { 'Content-Type': contentType } },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => {
            text += d.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const statusOf = (r: Reply): { reason?: string; message?: string; kind?: string } => JSON.parse(r.body);

  before(async () => {
    server = await startServerProcess();
    const dir = join(server.dataDir, 'tls');
    tls = {
      ca: await readFile(join(dir, 'ca.crt'), 'utf8'),
      cert: await readFile(join(dir, 'admin.crt'), 'utf8'),
      key: await readFile(join(dir, 'admin.key'), 'utf8'),
    };
  });
  after(async () => {
    await server.stop();
    await removeDir(server.dataDir);
  });

  it('answers malformed, wrong and oversized bodies with Status errors and stores nothing', async () => {
    const path = '/api/v1/namespaces/default/configmaps';
    const before = statusOf(await call('GET', path)) as { metadata?: { resourceVersion?: string } };
    const cases: Array<[string, Reply, number, string]> = [
      ['truncated JSON', await call('POST', path, '{"metadata":{"name":"x"'), 400, 'BadRequest'],
      ['not an object', await call('POST', path, '[1,2,3]'), 400, 'BadRequest'],
      [
        'wrong kind',
        await call('POST', path, '{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x"}}'),
        400,
        'BadRequest',
      ],
      ['invalid name', await call('POST', path, '{"metadata":{"name":"Not_Valid"}}'), 422, 'Invalid'],
      [
        'garbage protobuf',
        await call('POST', path, Buffer.from('k8s\u0000garbage'), 'application/vnd.kubernetes.protobuf'),
        400,
        'BadRequest',
      ],
      ['unknown media type', await call('POST', path, 'x', 'text/plain'), 415, 'UnsupportedMediaType'],
      [
        'bad patch type',
        await call('PATCH', `${path}/none`, '{}', 'application/x-made-up'),
        415,
        'UnsupportedMediaType',
      ],
      [
        'too large',
        await call(
          'POST',
          path,
          JSON.stringify({ metadata: { name: 'big' }, data: { a: 'x'.repeat(4 * 1024 * 1024) } }),
        ),
        413,
        'RequestEntityTooLarge',
      ],
      [
        'bad label selector',
        await call('GET', `${path}?labelSelector=${encodeURIComponent('a in (b')}`),
        400,
        'BadRequest',
      ],
      ['bad continue token', await call('GET', `${path}?limit=1&continue=zzz`), 400, 'BadRequest'],
    ];
    for (const [what, reply, code, reason] of cases) {
      assert.equal(reply.status, code, `${what}: ${reply.body}`);
      const status = statusOf(reply);
      assert.equal(status.kind, 'Status', what);
      assert.equal(status.reason, reason, what);
      assert.ok((status.message ?? '').length > 0, what);
    }
    const afterList = statusOf(await call('GET', path)) as {
      items?: unknown[];
      metadata?: { resourceVersion?: string };
    };
    assert.equal(afterList.items?.length, 0);
    assert.equal(afterList.metadata?.resourceVersion, before.metadata?.resourceVersion, 'no write happened');
    assert.equal((await call('GET', '/healthz')).status, 200);
  });

  it('serves Prometheus metrics with request latency by verb and resource', async () => {
    const metrics = await call('GET', '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(
      metrics.body,
      /kedge_api_request_duration_seconds_bucket\{[^}]*verb="create"[^}]*resource="configmaps"/,
    );
    assert.match(metrics.body, /kedge_store_revision \d+/);
    assert.match(metrics.body, /kedge_api_watches/);
  });
});
