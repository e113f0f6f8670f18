/**
 * The Kubernetes JSONPath subset used by CRD additionalPrinterColumns and `kubectl -o jsonpath`:
 * `.a.b`, `{.a.b}`, `['key.with.dots']`, `[n]`, `[-1]`, `[*]`, `.*`, `[start:end:step]`, `[0,2]`,
 * `..` recursive descent, and filters `[?(@.type=="Ready")]` with ==, !=, <, >, <=, >= or existence.
 * Missing keys and out-of-range indexes give no result (like Kubernetes with allowMissingKeys).
 */
import { KedgeError } from '../lib/errors.ts';
import { isPlainObject } from './meta.ts';

type CompareOp = '==' | '!=' | '<' | '>' | '<=' | '>=';

type Operand =
  | { readonly kind: 'path'; readonly segments: readonly Segment[] }
  | { readonly kind: 'literal'; readonly value: unknown };

type Segment =
  | { readonly type: 'fields'; readonly names: readonly string[] }
  | { readonly type: 'wildcard' }
  | { readonly type: 'indexes'; readonly indexes: readonly number[] }
  | { readonly type: 'slice'; readonly start?: number; readonly end?: number; readonly step: number }
  | { readonly type: 'filter'; readonly left: Operand; readonly op?: CompareOp; readonly right?: Operand }
  | { readonly type: 'recursive'; readonly inner: Segment };

/** Evaluates a compiled expression against one JSON value; returns every match in document order. */
export type JsonPathFn = (obj: unknown) => unknown[];

const NAME_STOP = new Set([
  '.',
  '[',
  ']',
  '{',
  '}',
  '(',
  ')',
  ' ',
  '\t',
  '\n',
  '\r',
  '=',
  '!',
  '<',
  '>',
  ',',
  "'",
  '"',
  '@',
  '&',
  '|',
]);

class Parser {
  private pos = 0;
  private readonly src: string;
  private readonly expr: string;
  constructor(src: string, expr: string) {
    this.src = src;
    this.expr = expr;
  }

  fail(reason: string): never {
    throw new KedgeError(
      'KEDGE_JSONPATH_INVALID',
      `Invalid JSONPath ${JSON.stringify(this.expr)}: ${reason}`,
      {
        context: { expression: this.expr, position: this.pos },
      },
    );
  }

  private peek(n = 0): string {
    return this.src[this.pos + n] ?? '';
  }
  private eat(s: string): boolean {
    if (this.src.startsWith(s, this.pos)) {
      this.pos += s.length;
      return true;
    }
    return false;
  }
  private expect(s: string): void {
    if (!this.eat(s)) this.fail(`expected '${s}' at position ${this.pos}, found ${this.describe()}`);
  }
  private describe(): string {
    return this.pos >= this.src.length ? 'end of expression' : `'${this.peek()}'`;
  }
  private skipWs(): void {
    while (/\s/.test(this.peek())) this.pos++;
  }
  unexpected(): never {
    return this.fail(`unexpected ${this.describe()} at position ${this.pos}`);
  }
  atEnd(): boolean {
    return this.pos >= this.src.length;
  }

  /** A path from the root: optional `$`, then segments; a bare leading name is read as `.name`. */
  rootPath(): Segment[] {
    this.eat('$');
    const segs: Segment[] = [];
    if (!this.atEnd() && !NAME_STOP.has(this.peek()) && this.peek() !== '*') segs.push(this.nameSegment());
    segs.push(...this.segments());
    return segs;
  }

  /** Segments until something that cannot continue a path. */
  segments(): Segment[] {
    const segs: Segment[] = [];
    for (;;) {
      if (this.eat('..')) {
        if (this.peek() === '[') segs.push({ type: 'recursive', inner: this.bracket() });
        else if (this.eat('*')) segs.push({ type: 'recursive', inner: { type: 'wildcard' } });
        else segs.push({ type: 'recursive', inner: this.nameSegment() });
      } else if (this.peek() === '.') {
        this.pos++;
        if (this.eat('*')) segs.push({ type: 'wildcard' });
        else segs.push(this.nameSegment());
      } else if (this.peek() === '[') {
        segs.push(this.bracket());
      } else {
        return segs;
      }
    }
  }

  private nameSegment(): Segment {
    let name = '';
    while (!this.atEnd()) {
      const c = this.peek();
      if (c === '\\' && this.pos + 1 < this.src.length) {
        name += this.peek(1);
        this.pos += 2;
        continue;
      }
      if (NAME_STOP.has(c)) break;
      name += c;
      this.pos++;
    }
    if (name === '') this.fail(`expected a field name at position ${this.pos}, found ${this.describe()}`);
    return { type: 'fields', names: [name] };
  }

  private bracket(): Segment {
    this.expect('[');
    this.skipWs();
    let seg: Segment;
    if (this.eat('*')) {
      seg = { type: 'wildcard' };
    } else if (this.eat('?(')) {
      seg = this.filter();
      this.expect(')');
    } else if (this.peek() === "'" || this.peek() === '"') {
      const names = [this.quoted()];
      for (this.skipWs(); this.eat(','); this.skipWs()) {
        this.skipWs();
        names.push(this.quoted());
      }
      seg = { type: 'fields', names };
    } else {
      seg = this.indexOrSlice();
    }
    this.skipWs();
    this.expect(']');
    return seg;
  }

  private quoted(): string {
    const q = this.peek();
    if (q !== "'" && q !== '"')
      this.fail(`expected a quoted name at position ${this.pos}, found ${this.describe()}`);
    this.pos++;
    let out = '';
    for (;;) {
      if (this.atEnd()) this.fail('unterminated quoted string');
      const c = this.peek();
      this.pos++;
      if (c === q) return out;
      if (c === '\\' && !this.atEnd()) {
        out += this.peek();
        this.pos++;
      } else {
        out += c;
      }
    }
  }

  private integer(): number | undefined {
    const m = /^[+-]?\d+/.exec(this.src.slice(this.pos));
    if (m === null) return undefined;
    this.pos += m[0].length;
    return Number(m[0]);
  }

  private indexOrSlice(): Segment {
    const first = this.integer();
    this.skipWs();
    if (this.peek() === ':') {
      this.pos++;
      this.skipWs();
      const end = this.integer();
      this.skipWs();
      let step = 1;
      if (this.eat(':')) {
        this.skipWs();
        const s = this.integer();
        if (s !== undefined) step = s;
      }
      if (step <= 0) this.fail(`slice step must be positive, got ${step}`);
      return {
        type: 'slice',
        step,
        ...(first === undefined ? {} : { start: first }),
        ...(end === undefined ? {} : { end }),
      };
    }
    if (first === undefined)
      this.fail(`expected an index, slice, '*', filter or quoted name at position ${this.pos}`);
    const indexes = [first];
    for (this.skipWs(); this.eat(','); this.skipWs()) {
      this.skipWs();
      const n = this.integer();
      if (n === undefined) this.fail(`expected an index at position ${this.pos}, found ${this.describe()}`);
      indexes.push(n);
    }
    return { type: 'indexes', indexes };
  }

  private filter(): Segment {
    this.skipWs();
    const left = this.operand();
    this.skipWs();
    const op = (['==', '!=', '<=', '>=', '<', '>'] as const).find((o) => this.eat(o));
    if (op === undefined) {
      if (left.kind !== 'path') this.fail('a filter without an operator must test a path like @.field');
      return { type: 'filter', left };
    }
    this.skipWs();
    const right = this.operand();
    this.skipWs();
    return { type: 'filter', left, op, right };
  }

  private operand(): Operand {
    if (this.eat('@')) return { kind: 'path', segments: this.segments() };
    if (this.peek() === "'" || this.peek() === '"') return { kind: 'literal', value: this.quoted() };
    const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(this.src.slice(this.pos));
    if (m !== null) {
      this.pos += m[0].length;
      return { kind: 'literal', value: Number(m[0]) };
    }
    for (const [word, value] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (this.eat(word)) return { kind: 'literal', value };
    }
    return this.fail(
      `expected @path, number or quoted string in filter at position ${this.pos}, found ${this.describe()}`,
    );
  }
}

function descendants(node: unknown, out: unknown[]): void {
  out.push(node);
  if (Array.isArray(node)) for (const v of node) descendants(v, out);
  else if (isPlainObject(node)) for (const v of Object.values(node)) descendants(v, out);
}

function compare(a: unknown, op: CompareOp, b: unknown): boolean {
  if (op === '==') return a === b;
  if (op === '!=') return a !== b;
  const comparable =
    (typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string');
  if (!comparable) return false;
  const x = a as number | string;
  const y = b as number | string;
  switch (op) {
    case '<':
      return x < y;
    case '>':
      return x > y;
    case '<=':
      return x <= y;
    case '>=':
      return x >= y;
  }
}

function resolve(operand: Operand, node: unknown): unknown[] {
  return operand.kind === 'literal' ? [operand.value] : evaluate(operand.segments, [node]);
}

function apply(seg: Segment, nodes: readonly unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const node of nodes) {
    switch (seg.type) {
      case 'fields':
        if (isPlainObject(node)) for (const n of seg.names) if (Object.hasOwn(node, n)) out.push(node[n]);
        break;
      case 'wildcard':
        if (Array.isArray(node)) out.push(...node);
        else if (isPlainObject(node)) out.push(...Object.values(node));
        break;
      case 'indexes':
        if (Array.isArray(node)) {
          for (const i of seg.indexes) {
            const at = i < 0 ? node.length + i : i;
            if (at >= 0 && at < node.length) out.push(node[at]);
          }
        }
        break;
      case 'slice':
        if (Array.isArray(node)) {
          const len = node.length;
          const norm = (v: number | undefined, dflt: number): number =>
            v === undefined ? dflt : v < 0 ? Math.max(len + v, 0) : Math.min(v, len);
          const end = norm(seg.end, len);
          for (let i = norm(seg.start, 0); i < end; i += seg.step) out.push(node[i]);
        }
        break;
      case 'filter':
        if (Array.isArray(node)) {
          for (const el of node) {
            const lefts = resolve(seg.left, el);
            if (seg.op === undefined || seg.right === undefined) {
              if (lefts.length > 0) out.push(el);
              continue;
            }
            const rights = resolve(seg.right, el);
            if (lefts.length > 0 && rights.length > 0 && compare(lefts[0], seg.op, rights[0])) out.push(el);
          }
        }
        break;
      case 'recursive': {
        const all: unknown[] = [];
        descendants(node, all);
        out.push(...apply(seg.inner, all));
        break;
      }
    }
  }
  return out;
}

function evaluate(segments: readonly Segment[], start: readonly unknown[]): unknown[] {
  let nodes: unknown[] = [...start];
  for (const seg of segments) {
    nodes = apply(seg, nodes);
    if (nodes.length === 0) break;
  }
  return nodes;
}

/**
 * Compile a JSONPath expression, with or without the surrounding `{}`. Malformed expressions (and
 * template features outside the subset, like `range` or literal text) throw KEDGE_JSONPATH_INVALID.
 */
export function compileJsonPath(expr: string): JsonPathFn {
  let body = expr.trim();
  if (body.startsWith('{')) {
    if (!body.endsWith('}')) new Parser(body, expr).fail('unbalanced braces');
    body = body.slice(1, -1).trim();
  }
  if (body === '') new Parser(body, expr).fail('empty expression');
  const parser = new Parser(body, expr);
  const segments = parser.rootPath();
  if (!parser.atEnd()) parser.unexpected();
  return (obj) => evaluate(segments, [obj]);
}

// ---------------------------------------------------------------------------------------------
// Printing results the way Kubernetes' Go code does (jsonpath.PrintResults).

/** A number as Go's `fmt.Print(float64)` writes it (`%v` is `%g`: shortest, exponent below 1e-4 or from 1e6). */
export function goFormatFloat(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? '+Inf' : '-Inf';
  if (n === 0) return Object.is(n, -0) ? '-0' : '0';
  const [mant = '0', expText = '0'] = n.toExponential().split('e');
  const exp = Number(expText);
  if (exp < -4 || exp >= 6) {
    const e = Math.abs(exp);
    return `${mant}e${exp < 0 ? '-' : '+'}${e < 10 ? `0${e}` : e}`;
  }
  return String(n);
}

/** JSON as Go's encoding/json writes it: object keys sorted, `<`, `>`, `&` escaped. */
export function goJson(value: unknown): string {
  const sortKeys = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (isPlainObject(v)) {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) out[k] = sortKeys(v[k]);
      return out;
    }
    return v;
  };
  return (JSON.stringify(sortKeys(value)) ?? 'null')
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026');
}

/** One result as `-o jsonpath` prints it: objects and arrays as JSON, strings raw, null as `<nil>`. */
export function formatJsonPathValue(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : goFormatFloat(value);
  if (typeof value === 'boolean') return String(value);
  if (value === null || value === undefined) return '<nil>';
  return goJson(value);
}

/** Results joined by single spaces, as `kubectl -o jsonpath` prints one `{}` block. */
export function formatJsonPathResults(values: readonly unknown[]): string {
  return values.map(formatJsonPathValue).join(' ');
}
