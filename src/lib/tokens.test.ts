import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { isKedgeError } from './errors.ts';
import { formatJoinToken, generateJoinToken, parseApiToken, parseJoinToken, TokenStore } from './tokens.ts';

const HASH = 'a'.repeat(64);
const OTHER_HASH = 'b'.repeat(64);
const isConfigError = (err: unknown): boolean => isKedgeError(err, 'KEDGE_CONFIG_INVALID');

describe('join token format', () => {
  test('generate and parse round-trip', () => {
    const t = generateJoinToken(HASH);
    assert.match(t.token, /^K10a{64}::[a-z0-9]{6}\.[a-z0-9]{32}$/);
    assert.deepEqual(parseJoinToken(t.token), { caHash: HASH, id: t.id, secret: t.secret });
    assert.notEqual(generateJoinToken(HASH).secret, t.secret);
  });

  test('accepts surrounding whitespace and an upper-case hash', () => {
    const t = generateJoinToken(HASH);
    assert.deepEqual(parseJoinToken(`  K10${HASH.toUpperCase()}::${t.id}.${t.secret}\n`).caHash, HASH);
  });

  test('malformed tokens name the bad part and never echo the secret', () => {
    const secret = 'zzzzsecretzzzz9999';
    const cases: Array<[string, RegExp]> = [
      ['', /start with K10/],
      [`X10${HASH}::abcdef.${secret}`, /start with K10/],
      [`K10${HASH}abcdef.${secret}`, /form K10/],
      [`K10abc::abcdef.${secret}`, /CA hash/],
      [`K10${HASH}::abcdef${secret}`, /<id>\.<secret>/],
      [`K10${HASH}::ABCDEF.${secret}`, /id must be 6/],
      [`K10${HASH}::abcde.${secret}`, /id must be 6/],
      [`K10${HASH}::abcdef.short`, /secret must be 16 to 64/],
      [`K10${HASH}::abcdef.${secret}!`, /secret must be 16 to 64/],
    ];
    for (const [token, message] of cases) {
      assert.throws(
        () => parseJoinToken(token),
        (err: unknown) => {
          assert.ok(isConfigError(err), token);
          assert.match((err as Error).message, message, token);
          assert.ok(!(err as Error).message.includes('zzzzsecret'), 'message echoes the secret');
          assert.ok(!JSON.stringify((err as { context: unknown }).context).includes('zzzzsecret'));
          return true;
        },
      );
    }
    assert.throws(() => parseJoinToken(42 as unknown as string), isConfigError);
    assert.throws(() => formatJoinToken({ caHash: HASH, id: 'x', secret: secret }), isConfigError);
  });

  test('property: every generated token parses back to its parts', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9a-f]{64}$/), (hash) => {
        const t = generateJoinToken(hash);
        assert.deepEqual(parseJoinToken(t.token), { caHash: hash, id: t.id, secret: t.secret });
      }),
    );
  });

  test('property: any string either parses or fails with KEDGE_CONFIG_INVALID without echoing a secret', () => {
    const fixedMessages = new Set([
      'Join token must start with K10',
      'Join token must have the form K10<ca-hash>::<id>.<secret>',
      'Join token CA hash must be 64 hex characters (sha256 of the CA certificate)',
      'Join token must end in <id>.<secret>',
      'Join token id must be 6 characters from [a-z0-9]',
      'Join token secret must be 16 to 64 characters from [a-z0-9]',
    ]);
    const anyToken = fc.oneof(
      fc.string(),
      fc
        .tuple(fc.constantFrom('K10', 'K1', ''), fc.string(), fc.constantFrom('::', ':', ''), fc.string())
        .map(([a, b, c, d]) => a + b + c + d),
      fc
        .tuple(
          fc.stringMatching(/^[0-9a-f]{60,66}$/),
          fc.oneof(fc.stringMatching(/^[a-z0-9]{6}$/), fc.string({ maxLength: 8 })),
          fc.oneof(fc.stringMatching(/^[a-z0-9]{10,70}$/), fc.string({ maxLength: 80 })),
        )
        .map(([h, id, s]) => `K10${h}::${id}.${s}`),
    );
    fc.assert(
      fc.property(anyToken, (token) => {
        try {
          const parsed = parseJoinToken(token);
          assert.equal(formatJoinToken(parsed), `K10${parsed.caHash}::${parsed.id}.${parsed.secret}`);
        } catch (err) {
          assert.ok(isConfigError(err));
          // Messages are fixed texts: nothing of the input (so nothing of a secret) is echoed.
          assert.ok(fixedMessages.has((err as Error).message), (err as Error).message);
        }
      }),
      { numRuns: 500 },
    );
  });

  test('API token format', () => {
    assert.deepEqual(parseApiToken('kedge_abc123.abcdefghijklmnop'), {
      id: 'abc123',
      secret: 'abcdefghijklmnop',
    });
    assert.throws(() => parseApiToken('abc123.abcdefghijklmnop'), isConfigError);
    assert.throws(() => parseApiToken('kedge_abc123.short'), isConfigError);
  });
});

describe('TokenStore', () => {
  let dir: string;
  let path: string;
  let clock = 1_000_000;
  let store: TokenStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kedge-tokens-'));
    path = join(dir, 'tokens.db');
    store = new TokenStore({ path, caHash: HASH, now: () => clock });
  });
  after(async () => {
    store.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a created join token verifies in full and in short form', () => {
    const created = store.create({ description: 'first' });
    assert.equal(created.expiresAt, undefined);
    const parsed = parseJoinToken(created.token);
    assert.equal(parsed.caHash, HASH);
    assert.equal(parsed.id, created.id);
    assert.deepEqual(store.verify(created.token), { id: created.id });
    assert.deepEqual(store.verify(`${parsed.id}.${parsed.secret}`), { id: created.id });
  });

  test('a wrong secret, unknown id, other CA hash or garbage does not verify', () => {
    const created = store.create();
    const { id, secret } = parseJoinToken(created.token);
    const wrong = secret.slice(0, -1) + (secret.endsWith('a') ? 'b' : 'a');
    assert.equal(store.verify(formatJoinToken({ caHash: HASH, id, secret: wrong })), undefined);
    assert.equal(store.verify(formatJoinToken({ caHash: HASH, id: 'zzzzzz', secret })), undefined);
    assert.equal(store.verify(formatJoinToken({ caHash: OTHER_HASH, id, secret })), undefined);
    for (const junk of ['', 'K10', 'x.y', `${id}.`, `${id}.${secret}.x`])
      assert.equal(store.verify(junk), undefined, junk);
  });

  test('an expired join token is refused', () => {
    const created = store.create({ ttlSeconds: 60 });
    assert.equal(created.expiresAt?.getTime(), clock + 60_000);
    assert.ok(store.verify(created.token));
    clock += 59_999;
    assert.ok(store.verify(created.token));
    clock += 1;
    assert.equal(store.verify(created.token), undefined);
  });

  test('a revoked join token is refused', () => {
    const created = store.create();
    assert.ok(store.verify(created.token));
    assert.equal(store.revoke(created.id), true);
    assert.equal(store.verify(created.token), undefined);
    assert.equal(store.revoke('nope00'), false);
    assert.equal(store.list().find((t) => t.id === created.id)?.revoked, true);
  });

  test('list shows ids, descriptions and expiry but no secrets', () => {
    const created = store.create({ description: 'for the list', ttlSeconds: 3600 });
    const { secret } = parseJoinToken(created.token);
    const entry = store.list().find((t) => t.id === created.id);
    assert.deepEqual(entry, {
      id: created.id,
      description: 'for the list',
      createdAt: new Date(clock),
      expiresAt: new Date(clock + 3_600_000),
      revoked: false,
    });
    assert.ok(!JSON.stringify(store.list()).includes(secret));
  });

  test('the file is private, holds no secret, and a second process sees new tokens', async () => {
    const created = store.create();
    const { secret } = parseJoinToken(created.token);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    // Like `kedge token create` in another process while the server runs.
    const other = new TokenStore({ path, caHash: HASH, now: () => clock });
    try {
      assert.deepEqual(other.verify(created.token), { id: created.id });
      const fromCli = other.create({ description: 'cli' });
      assert.deepEqual(store.verify(fromCli.token), { id: fromCli.id });
      other.revoke(created.id);
      assert.equal(store.verify(created.token), undefined);
    } finally {
      other.close();
    }
    for (const file of [path, `${path}-wal`]) {
      const bytes = await readFile(file).catch(() => Buffer.alloc(0));
      assert.ok(!bytes.includes(Buffer.from(secret)), `${file} holds a secret`);
    }
  });

  test('refuses bad options with KEDGE_CONFIG_INVALID', () => {
    assert.throws(() => store.create({ ttlSeconds: 0 }), isConfigError);
    assert.throws(() => store.create({ ttlSeconds: 1.5 }), isConfigError);
    assert.throws(() => store.create({ description: 'x'.repeat(300) }), isConfigError);
    assert.throws(() => new TokenStore({ path: ':memory:', caHash: 'nothex' }), isConfigError);
    assert.throws(() => store.createApiToken({ user: '' }), isConfigError);
    assert.throws(() => store.createApiToken({ user: 'u', groups: [''] }), isConfigError);
  });

  test('API tokens authenticate a user with groups until revoked or expired', () => {
    const created = store.createApiToken({ user: 'alice', groups: ['dev', 'ops'], description: 'laptop' });
    assert.match(created.token, /^kedge_[a-z0-9]{6}\.[a-z0-9]{32}$/);
    assert.deepEqual(store.authenticateToken(created.token), {
      id: created.id,
      user: 'alice',
      groups: ['dev', 'ops'],
    });
    const { secret } = parseApiToken(created.token);
    assert.equal(store.authenticateToken(`kedge_${created.id}.${'0'.repeat(32)}`), undefined);
    assert.equal(store.authenticateToken(`${created.id}.${secret}`), undefined);
    // A join token is not an API token, and the other way round.
    assert.equal(store.verify(`${created.id}.${secret}`), undefined);
    const join = store.create();
    const j = parseJoinToken(join.token);
    assert.equal(store.authenticateToken(`kedge_${j.id}.${j.secret}`), undefined);

    const listed = store.listApiTokens().find((t) => t.id === created.id);
    assert.equal(listed?.user, 'alice');
    assert.deepEqual(listed?.groups, ['dev', 'ops']);
    assert.ok(!JSON.stringify(store.listApiTokens()).includes(secret));

    assert.equal(store.revokeApiToken(created.id), true);
    assert.equal(store.authenticateToken(created.token), undefined);

    const short = store.createApiToken({ user: 'bob', ttlSeconds: 10 });
    assert.equal(store.authenticateToken(short.token)?.user, 'bob');
    clock += 10_000;
    assert.equal(store.authenticateToken(short.token), undefined);
  });
});
