// The example of docs/mappers.md: the docs show this mapper verbatim, and it works.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isKedgeError } from '../../../lib/errors.ts';
import { builtinMappers, openDevice, registerMapper } from '../index.ts';
import { RecordingSink } from '../testing.ts';
import type { MapperDevice } from '../types.ts';
import { fileMapper } from './file-mapper.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kedge-file-mapper-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the file mapper example', () => {
  it('is shown verbatim in docs/mappers.md', async () => {
    const root = join(import.meta.dirname, '../../../..');
    const source = await readFile(join(import.meta.dirname, 'file-mapper.ts'), 'utf8');
    const docs = await readFile(join(root, 'docs/mappers.md'), 'utf8');
    assert.ok(
      docs.includes(`\`\`\`ts\n${source}\`\`\``),
      'docs/mappers.md must hold file-mapper.ts in a ts block',
    );
  });

  it('reads files as properties, writes desired values to them, and follows the file coming and going', async () => {
    const temp = join(dir, 'temp');
    const led = join(dir, 'led');
    await writeFile(temp, '42500\n');
    await writeFile(led, '0\n');
    const registry = builtinMappers();
    registerMapper(registry, fileMapper);
    const dev: MapperDevice = {
      namespace: 'default',
      name: 'board',
      protocol: 'file',
      config: {},
      properties: [
        {
          name: 'temp',
          type: 'float',
          accessMode: 'ReadOnly',
          collectCycleMs: 20,
          visitor: { path: temp, scale: 0.001 },
        },
        {
          name: 'led',
          type: 'int',
          accessMode: 'ReadWrite',
          collectCycleMs: 20,
          visitor: { path: led },
          maximum: 1,
        },
      ],
    };
    const sink = new RecordingSink();
    const session = await openDevice(registry, dev, sink);
    try {
      await sink.waitFor('both files read', (s) => s.last('temp') === '42.5' && s.last('led') === '0');
      await session.write('led', '1');
      assert.equal(await readFile(led, 'utf8'), '1\n');
      assert.equal(sink.last('led'), '1');
      await assert.rejects(session.write('led', '2'), (err: unknown) =>
        isKedgeError(err, 'KEDGE_MAPPER_WRITE_REFUSED'),
      );
      await assert.rejects(session.write('temp', '1'), /temp is ReadOnly/);
      await rm(temp);
      await sink.waitFor('offline', (s) => s.lastState === 'offline');
      await writeFile(temp, '40000\n');
      await sink.waitFor('back', (s) => s.lastState === 'online' && s.last('temp') === '40');
      assert.deepEqual(sink.states, ['online', 'offline', 'online']);
    } finally {
      await session.close();
    }
    assert.deepEqual(fileMapper.validate({ ...dev, properties: [{ ...dev.properties[0]!, visitor: {} }] }), [
      'property temp: visitor.path must name a file',
    ]);
  });
});
