/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by source folder, and
 * total (inclusive) time of the functions that matter most.
 *
 *   node scripts/cpuprofile.ts FILE.cpuprofile [TOP=40] [FROM_S] [TO_S]
 *
 * FROM_S/TO_S keep only the samples between those seconds after the profile started (to look at one phase).
 */
import { readFileSync } from 'node:fs';

interface Frame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: Frame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg, fromArg, toArg] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: node scripts/cpuprofile.ts FILE [TOP] [FROM_S] [TO_S]');
const top = Number(topArg ?? 40);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const from = fromArg === undefined ? -Infinity : Number(fromArg) * 1e6;
const to = toArg === undefined ? Infinity : Number(toArg) * 1e6;

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const self = new Map<number, number>();
let t = 0;
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  t += profile.timeDeltas[i] ?? 0;
  if (t < from || t > to) continue;
  const dt = profile.timeDeltas[i + 1] ?? 0;
  const id = profile.samples[i]!;
  self.set(id, (self.get(id) ?? 0) + dt);
  total += dt;
}

const label = (f: Frame): string => {
  const where = f.url.replace(/^file:\/\/.*?\/(src|node_modules|bench)\//, '$1/').replace(/^node:/, 'node:');
  return `${f.functionName || '(anonymous)'} ${where}${where ? `:${f.lineNumber + 1}` : ''}`;
};
const folder = (f: Frame): string => {
  if (f.url === '') return f.functionName.startsWith('(') ? f.functionName : '(native)';
  const m = /\/(src\/[^/]+(?:\/[^/]+)?|node_modules\/[^/]+)\//.exec(f.url);
  if (m !== null) return m[1]!.replace(/\/[^/]+\.ts$/, '');
  return f.url.startsWith('node:') ? f.url.split('/')[0]! : f.url;
};

const bySelf = new Map<string, number>();
const byFolder = new Map<string, number>();
const inclusive = new Map<string, number>();
for (const [id, us] of self) {
  const node = byId.get(id)!;
  const key = label(node.callFrame);
  bySelf.set(key, (bySelf.get(key) ?? 0) + us);
  const dir = folder(node.callFrame);
  byFolder.set(dir, (byFolder.get(dir) ?? 0) + us);
  // Inclusive: every distinct function on the stack gets the sample once.
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const k = label(byId.get(cur)!.callFrame);
    if (seen.has(k)) continue;
    seen.add(k);
    inclusive.set(k, (inclusive.get(k) ?? 0) + us);
  }
}

const print = (title: string, m: Map<string, number>, n: number): void => {
  console.log(`\n== ${title} (of ${(total / 1e6).toFixed(1)} s sampled)`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n))
    console.log(
      `${((us / total) * 100).toFixed(1).padStart(5)} %  ${(us / 1e6).toFixed(2).padStart(7)} s  ${k}`,
    );
};
print('self time by function', bySelf, top);
print('self time by folder', byFolder, 25);
print('inclusive time', inclusive, top);

// KEDGE_PROF_CALLERS=name: where the time of functions whose label contains `name` comes from (the nearest
// caller in src/ or bench/, with the time spent there).
const wanted = process.env['KEDGE_PROF_CALLERS'];
if (wanted !== undefined) {
  const callers = new Map<string, number>();
  for (const [id, us] of self) {
    let cur: number | undefined = id;
    let hit = false;
    for (; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (!hit && label(f).includes(wanted)) hit = true;
      else if (hit && /\/(src|bench)\//.test(f.url)) break;
    }
    if (!hit) continue;
    const k = cur === undefined ? '(no caller in src/)' : label(byId.get(cur)!.callFrame);
    callers.set(k, (callers.get(k) ?? 0) + us);
  }
  print(`callers of ${wanted}`, callers, top);
}

// KEDGE_PROF_STALLS=ms: stretches of at least that many milliseconds without an (idle) sample — the event loop
// was busy all along — with when they started and the functions that took most of them (inclusive, in src/).
const stallMs = process.env['KEDGE_PROF_STALLS'];
if (stallMs !== undefined) {
  const min = Number(stallMs) * 1000;
  const idleIds = new Set(
    profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id),
  );
  let at = 0;
  let start = -1;
  let span = new Map<string, number>();
  const report = (end: number): void => {
    if (start < 0 || end - start < min) return;
    const top3 = [...span]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 4)
      .map(([k, us]) => `${(us / 1000).toFixed(0)} ms ${k}`)
      .join(' | ');
    console.log(`busy ${((end - start) / 1000).toFixed(0)} ms at ${(start / 1e6).toFixed(1)} s: ${top3}`);
  };
  console.log(`\n== busy stretches of ${stallMs} ms or more`);
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    const id = profile.samples[i]!;
    if (idleIds.has(id)) {
      report(at);
      start = -1;
      span = new Map();
      continue;
    }
    if (start < 0) start = at;
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const seenHere = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (!/\/src\//.test(f.url) && !f.functionName.startsWith('(garbage')) continue;
      const k = label(f);
      if (seenHere.has(k)) continue;
      seenHere.add(k);
      span.set(k, (span.get(k) ?? 0) + dt);
    }
  }
  report(at);
}
