/**
 * Label and field selectors with Kubernetes semantics: the query-string syntax (`?labelSelector=`,
 * `?fieldSelector=`), selectors built from `LabelSelectorSpec`, matching, canonical printing, and the
 * per-kind field sets the apiserver lets clients select on.
 */
import { KedgeError } from '../lib/errors.ts';
import type { KubeObject, LabelSelectorSpec } from './meta.ts';
import { isPlainObject } from './meta.ts';

/** Operators as Kubernetes names them (`selection.Operator`); `!` is DoesNotExist. */
export type LabelOperator = 'in' | 'notin' | '=' | '==' | '!=' | 'exists' | '!' | 'gt' | 'lt';

export interface LabelRequirement {
  readonly key: string;
  readonly operator: LabelOperator;
  /** Sorted and without duplicates; empty for `exists` and `!`; one value for `=`, `==`, `!=`, `gt`, `lt`. */
  readonly values: readonly string[];
}

/**
 * A parsed label selector: the AND of its requirements, sorted by key. `matchesNothing` is the
 * Kubernetes `labels.Nothing()` selector (from a null spec): it matches no object and prints as ''.
 */
export interface LabelSelector {
  readonly requirements: readonly LabelRequirement[];
  readonly matchesNothing: boolean;
}

/** Matches every object. */
export const EVERYTHING: LabelSelector = Object.freeze({
  requirements: Object.freeze([]),
  matchesNothing: false,
});
/** Matches no object (what a null/undefined `LabelSelectorSpec` means). */
export const NOTHING: LabelSelector = Object.freeze({
  requirements: Object.freeze([]),
  matchesNothing: true,
});

function invalid(message: string, context: Record<string, unknown> = {}): KedgeError {
  return new KedgeError('KEDGE_SELECTOR_INVALID', message, { context });
}

// ---------------------------------------------------------------------------------------------
// Validation of keys and values (k8s.io/apimachinery/pkg/util/validation), with the same messages.

const QNAME_FMT = '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]';
const QNAME_RE = new RegExp(`^${QNAME_FMT}$`);
const LABEL_VALUE_FMT = `(${QNAME_FMT})?`;
const LABEL_VALUE_RE = new RegExp(`^${LABEL_VALUE_FMT}$`);
const DNS1123_SUBDOMAIN_FMT = '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*';
const DNS1123_SUBDOMAIN_RE = new RegExp(`^${DNS1123_SUBDOMAIN_FMT}$`);
const QNAME_MSG =
  "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MSG =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

function regexError(msg: string, fmt: string, ...examples: string[]): string {
  return `${msg} (e.g. ${examples.map((e) => `'${e}', `).join(' or ')}regex used for validation is '${fmt}')`;
}

/** Problems with a qualified name (`[prefix/]name`), as Kubernetes words them; empty when valid. */
export function qualifiedNameErrors(value: string): string[] {
  const errs: string[] = [];
  const parts = value.split('/');
  let name: string;
  if (parts.length === 1) {
    name = parts[0] ?? '';
  } else if (parts.length === 2) {
    const prefix = parts[0] ?? '';
    name = parts[1] ?? '';
    if (prefix.length === 0) {
      errs.push('prefix part must be non-empty');
    } else {
      if (prefix.length > 253) errs.push('prefix part must be no more than 253 characters');
      if (!DNS1123_SUBDOMAIN_RE.test(prefix)) {
        errs.push(`prefix part ${regexError(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, 'example.com')}`);
      }
    }
  } else {
    return [
      `a qualified name ${regexError(QNAME_MSG, QNAME_FMT, 'MyName', 'my.name', '123-abc')} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`,
    ];
  }
  if (name.length === 0) errs.push('name part must be non-empty');
  else if (name.length > 63) errs.push('name part must be no more than 63 characters');
  if (!QNAME_RE.test(name))
    errs.push(`name part ${regexError(QNAME_MSG, QNAME_FMT, 'MyName', 'my.name', '123-abc')}`);
  return errs;
}

/** Problems with a label value, as Kubernetes words them; empty when valid. */
export function labelValueErrors(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 63) errs.push('must be no more than 63 characters');
  if (!LABEL_VALUE_RE.test(value))
    errs.push(regexError(LABEL_VALUE_MSG, LABEL_VALUE_FMT, 'MyValue', 'my_value', '12345'));
  return errs;
}

function fieldInvalid(path: string, value: string, detail: string): string {
  return `${path}: Invalid value: ${JSON.stringify(value)}: ${detail}`;
}

function aggregate(errs: string[]): string {
  return errs.length === 1 ? (errs[0] ?? '') : `[${errs.join(', ')}]`;
}

const INT_RE = /^[+-]?\d+$/;

/** Like `labels.NewRequirement`: validates, normalises values (sorted set), returns error strings. */
function newRequirement(
  key: string,
  operator: LabelOperator,
  rawValues: readonly string[],
  keyPath: string,
): LabelRequirement | string[] {
  const errs: string[] = [];
  const keyErrs = qualifiedNameErrors(key);
  if (keyErrs.length > 0) errs.push(fieldInvalid(keyPath, key, keyErrs.join('; ')));
  const values = [...new Set(rawValues)].sort();
  switch (operator) {
    case 'in':
    case 'notin':
      if (values.length === 0)
        errs.push("values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty");
      break;
    case '=':
    case '==':
    case '!=':
      if (values.length !== 1)
        errs.push('values: Invalid value: exact-match compatibility requires one single value');
      break;
    case 'exists':
    case '!':
      if (values.length !== 0)
        errs.push('values: Invalid value: values set must be empty for exists and does not exist');
      break;
    case 'gt':
    case 'lt':
      if (values.length !== 1)
        errs.push("values: Invalid value: for 'Gt', 'Lt' operators, exactly one value is required");
      values.forEach((v, i) => {
        if (!INT_RE.test(v))
          errs.push(
            fieldInvalid(`values[${i}]`, v, "for 'Gt', 'Lt' operators, the value must be an integer"),
          );
      });
      break;
  }
  values.forEach((v, i) => {
    const vErrs = labelValueErrors(v);
    if (vErrs.length > 0) errs.push(fieldInvalid(`values[${i}][${key}]`, v, vErrs.join('; ')));
  });
  return errs.length > 0 ? errs : { key, operator, values };
}

function byKey(a: LabelRequirement, b: LabelRequirement): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// The query-string parser: the same tokens, grammar and error messages as labels.Parse.

type TokenType = 'end' | 'id' | 'in' | 'notin' | '(' | ')' | ',' | '!' | '=' | '==' | '!=' | '>' | '<';
interface Token {
  readonly type: TokenType;
  readonly text: string;
}

const SPECIAL = new Set(['=', '!', '(', ')', ',', '>', '<']);
const WHITESPACE = new Set([' ', '\t', '\r', '\n']);

function lex(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  for (;;) {
    while (i < text.length && WHITESPACE.has(text[i] ?? '')) i++;
    if (i >= text.length) {
      tokens.push({ type: 'end', text: '' });
      return tokens;
    }
    const ch = text[i] ?? '';
    if (SPECIAL.has(ch)) {
      const two = text.slice(i, i + 2);
      if (two === '!=' || two === '==') {
        tokens.push({ type: two, text: two });
        i += 2;
      } else {
        tokens.push({ type: ch as TokenType, text: ch });
        i += 1;
      }
      continue;
    }
    let j = i;
    while (j < text.length && !SPECIAL.has(text[j] ?? '') && !WHITESPACE.has(text[j] ?? '')) j++;
    const word = text.slice(i, j);
    tokens.push({ type: word === 'in' || word === 'notin' ? word : 'id', text: word });
    i = j;
  }
}

const BINARY_OPERATORS: Partial<Record<TokenType, LabelOperator>> = {
  in: 'in',
  notin: 'notin',
  '=': '=',
  '==': '==',
  '!=': '!=',
  '>': 'gt',
  '<': 'lt',
};

class LabelParser {
  private pos = 0;
  private readonly tokens: Token[];
  constructor(text: string) {
    this.tokens = lex(text);
  }

  /** In value position the keywords `in` and `notin` are plain identifiers. */
  private peek(): Token {
    const t = this.tokens[this.pos] ?? { type: 'end', text: '' };
    return t.type === 'in' || t.type === 'notin' ? { type: 'id', text: t.text } : t;
  }
  private next(asOperator = false): Token {
    const t = this.tokens[this.pos] ?? { type: 'end', text: '' };
    if (this.pos < this.tokens.length - 1) this.pos++;
    if (!asOperator && (t.type === 'in' || t.type === 'notin')) return { type: 'id', text: t.text };
    return t;
  }

  parse(): LabelRequirement[] {
    const reqs: LabelRequirement[] = [];
    for (;;) {
      const t = this.peek();
      if (t.type === 'end') return reqs;
      if (t.type !== 'id' && t.type !== '!') {
        throw invalid(`found '${t.text}', expected: !, identifier, or 'end of string'`);
      }
      let req: LabelRequirement;
      try {
        req = this.requirement();
      } catch (err) {
        if (err instanceof KedgeError) throw invalid(`unable to parse requirement: ${err.message}`);
        throw err;
      }
      reqs.push(req);
      const sep = this.next();
      if (sep.type === 'end') return reqs;
      if (sep.type !== ',') throw invalid(`found '${sep.text}', expected: ',' or 'end of string'`);
      const after = this.peek();
      if (after.type !== 'id' && after.type !== '!') {
        throw invalid(`found '${after.text}', expected: identifier after ','`);
      }
    }
  }

  private requirement(): LabelRequirement {
    let t = this.next();
    let negated = false;
    if (t.type === '!') {
      negated = true;
      t = this.next();
    }
    if (t.type !== 'id') throw invalid(`found '${t.text}', expected: identifier`);
    const key = t.text;
    const keyErrs = qualifiedNameErrors(key);
    if (keyErrs.length > 0) throw invalid(fieldInvalid('<nil>', key, keyErrs.join('; ')));
    // `!key` takes no operator; whatever follows fails in parse() as it does in Kubernetes.
    if (negated) return this.build(key, '!', []);
    const la = this.peek().type;
    if (la === 'end' || la === ',') return this.build(key, 'exists', []);
    const op = this.next(true);
    const operator = BINARY_OPERATORS[op.type];
    if (operator === undefined) throw invalid(`found '${op.text}', expected: in, notin, =, ==, !=, gt, lt`);
    const values = operator === 'in' || operator === 'notin' ? this.setValues() : this.exactValue();
    return this.build(key, operator, values);
  }

  private build(key: string, operator: LabelOperator, values: string[]): LabelRequirement {
    const result = newRequirement(key, operator, values, 'key');
    if (Array.isArray(result)) throw invalid(aggregate(result));
    return result;
  }

  private setValues(): string[] {
    const open = this.next();
    if (open.type !== '(') throw invalid(`found '${open.text}' expected: '('`);
    const la = this.peek();
    if (la.type === ')') {
      this.next();
      return [''];
    }
    if (la.type !== 'id' && la.type !== ',') {
      throw invalid(`found '${la.text}', expected: ',', ')' or identifier`);
    }
    const values = new Set<string>();
    for (;;) {
      const t = this.next();
      if (t.type === 'id') {
        values.add(t.text);
        const t2 = this.peek();
        if (t2.type === ',') continue;
        if (t2.type === ')') break;
        throw invalid(`found '${t2.text}', expected: ',' or ')'`);
      }
      if (t.type === ',') {
        if (values.size === 0) values.add('');
        const t2 = this.peek();
        if (t2.type === ')') {
          values.add('');
          break;
        }
        if (t2.type === ',') {
          this.next();
          values.add('');
        }
        continue;
      }
      throw invalid(`found '${t.text}', expected: ',', or identifier`);
    }
    const close = this.next();
    if (close.type !== ')') throw invalid(`found '${close.text}', expected: ')'`);
    return [...values];
  }

  private exactValue(): string[] {
    const la = this.peek();
    if (la.type === 'end' || la.type === ',') return [''];
    const t = this.next();
    if (t.type === 'id') return [t.text];
    throw invalid(`found '${t.text}', expected: identifier`);
  }
}

/**
 * Parse the query-string label selector syntax (`a=b,c!=d,e in (f,g),!h,i`). The empty string
 * selects everything. Errors: KEDGE_SELECTOR_INVALID with Kubernetes' message.
 */
export function parseLabelSelector(text: string): LabelSelector {
  const reqs = new LabelParser(text).parse();
  reqs.sort(byKey);
  return { requirements: reqs, matchesNothing: false };
}

const SPEC_OPERATORS: Readonly<Record<string, LabelOperator>> = {
  In: 'in',
  NotIn: 'notin',
  Exists: 'exists',
  DoesNotExist: '!',
};

/**
 * A selector from a spec (`Deployment.spec.selector`, ...), like metav1.LabelSelectorAsSelector:
 * null/undefined gives NOTHING (matches no object), `{}` gives EVERYTHING.
 */
export function labelSelectorFromSpec(spec: LabelSelectorSpec | null | undefined): LabelSelector {
  if (spec === null || spec === undefined) return NOTHING;
  const reqs: LabelRequirement[] = [];
  for (const [key, value] of Object.entries(spec.matchLabels ?? {})) {
    const r = newRequirement(key, '=', [value], 'key');
    if (Array.isArray(r)) throw invalid(aggregate(r), { key });
    reqs.push(r);
  }
  for (const expr of spec.matchExpressions ?? []) {
    const op = SPEC_OPERATORS[expr.operator];
    if (op === undefined)
      throw invalid(`${JSON.stringify(expr.operator)} is not a valid label selector operator`);
    const r = newRequirement(expr.key, op, expr.values ?? [], 'key');
    if (Array.isArray(r)) throw invalid(aggregate(r), { key: expr.key });
    reqs.push(r);
  }
  reqs.sort(byKey);
  return { requirements: reqs, matchesNothing: false };
}

/** Whether a selector places no restriction (it matches every object). */
export function isEverything(sel: LabelSelector): boolean {
  return !sel.matchesNothing && sel.requirements.length === 0;
}

function requirementMatches(r: LabelRequirement, labels: Record<string, string>): boolean {
  const has = Object.hasOwn(labels, r.key);
  const value = has ? labels[r.key] : undefined;
  switch (r.operator) {
    case 'in':
    case '=':
    case '==':
      return value !== undefined && r.values.includes(value);
    case 'notin':
    case '!=':
      return value === undefined || !r.values.includes(value);
    case 'exists':
      return has;
    case '!':
      return !has;
    case 'gt':
    case 'lt': {
      if (value === undefined || !INT_RE.test(value) || r.values.length !== 1) return false;
      const have = BigInt(value);
      const want = BigInt(r.values[0] ?? '0');
      return r.operator === 'gt' ? have > want : have < want;
    }
  }
}

/** Whether an object's labels satisfy every requirement of the selector. */
export function matchesLabels(sel: LabelSelector, labels: Record<string, string> | undefined): boolean {
  if (sel.matchesNothing) return false;
  const ls = labels ?? {};
  return sel.requirements.every((r) => requirementMatches(r, ls));
}

function requirementToString(r: LabelRequirement): string {
  switch (r.operator) {
    case 'exists':
      return r.key;
    case '!':
      return `!${r.key}`;
    case 'in':
    case 'notin':
      return `${r.key} ${r.operator} (${r.values.join(',')})`;
    case 'gt':
      return `${r.key}>${r.values[0] ?? ''}`;
    case 'lt':
      return `${r.key}<${r.values[0] ?? ''}`;
    default:
      return `${r.key}${r.operator}${r.values[0] ?? ''}`;
  }
}

/** The canonical form Kubernetes prints (requirements sorted by key, set values sorted); '' for NOTHING. */
export function labelSelectorToString(sel: LabelSelector): string {
  if (sel.matchesNothing) return '';
  return [...sel.requirements].sort(byKey).map(requirementToString).join(',');
}

/** `labels.FormatLabels`: `k=v` pairs sorted by key, `<none>` when empty. */
export function formatLabels(labels: Record<string, string> | undefined): string {
  const keys = Object.keys(labels ?? {}).sort();
  if (keys.length === 0) return '<none>';
  return keys.map((k) => `${k}=${labels?.[k] ?? ''}`).join(',');
}

/** `metav1.FormatLabelSelector`: the canonical string of a spec, `<none>` when it is empty or null. */
export function formatLabelSelectorSpec(spec: LabelSelectorSpec | null | undefined): string {
  let text: string;
  try {
    text = labelSelectorToString(labelSelectorFromSpec(spec));
  } catch {
    return '<error>';
  }
  return text === '' ? '<none>' : text;
}

// ---------------------------------------------------------------------------------------------
// Field selectors (k8s.io/apimachinery/pkg/fields).

export interface FieldRequirement {
  readonly field: string;
  /** `==` is read as `=`. */
  readonly operator: '=' | '!=';
  readonly value: string;
}

export interface FieldSelector {
  readonly requirements: readonly FieldRequirement[];
}

function splitTerms(text: string): string[] {
  if (text === '') return [];
  const terms: string[] = [];
  let start = 0;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (escaped) escaped = false;
    else if (c === '\\') escaped = true;
    else if (c === ',') {
      terms.push(text.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(text.slice(start));
  return terms;
}

const TERM_OPERATORS = ['!=', '==', '='] as const;

function unescapeFieldValue(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i] ?? '';
    if (c === '\\') {
      const n = value[i + 1];
      if (n === '\\' || n === ',' || n === '=') {
        out += n;
        i++;
        continue;
      }
      throw invalid(`invalid field selector: invalid escape sequence: \\${n ?? ''}`, { value });
    }
    if (c === ',' || c === '=') {
      throw invalid(`invalid field selector: unescaped character in value: '${c}'`, { value });
    }
    out += c;
  }
  return out;
}

/** Escape `\`, `,` and `=` in a field selector value (`fields.EscapeValue`). */
export function escapeFieldValue(value: string): string {
  return value.replace(/[\\,=]/g, (c) => `\\${c}`);
}

/**
 * Parse a field selector (`metadata.name=x,spec.nodeName!=`), with `\,` `\=` `\\` escapes in values.
 * Like Kubernetes, keys and values are taken verbatim (no whitespace trimming); empty terms are skipped.
 */
export function parseFieldSelector(text: string): FieldSelector {
  const reqs: FieldRequirement[] = [];
  for (const term of splitTerms(text)) {
    if (term === '') continue;
    let found: { lhs: string; op: string; rhs: string } | undefined;
    for (let i = 0; i < term.length && found === undefined; i++) {
      for (const op of TERM_OPERATORS) {
        if (term.startsWith(op, i)) {
          found = { lhs: term.slice(0, i), op, rhs: term.slice(i + op.length) };
          break;
        }
      }
    }
    if (found === undefined) throw invalid(`invalid selector: '${text}'; can't understand '${term}'`);
    reqs.push({
      field: found.lhs,
      operator: found.op === '!=' ? '!=' : '=',
      value: unescapeFieldValue(found.rhs),
    });
  }
  reqs.sort((a, b) => (a.field < b.field ? -1 : a.field > b.field ? 1 : 0));
  return { requirements: reqs };
}

/** The canonical string of a field selector (values escaped). */
export function fieldSelectorToString(sel: FieldSelector): string {
  return sel.requirements.map((r) => `${r.field}${r.operator}${escapeFieldValue(r.value)}`).join(',');
}

/** Whether an object's field set satisfies the selector; a field the set lacks counts as ''. */
export function matchesFields(sel: FieldSelector, fields: Record<string, string>): boolean {
  return sel.requirements.every((r) => {
    const v = Object.hasOwn(fields, r.field) ? (fields[r.field] ?? '') : '';
    return r.operator === '=' ? v === r.value : v !== r.value;
  });
}

function at(obj: unknown, ...path: string[]): unknown {
  let cur = obj;
  for (const p of path) {
    if (!isPlainObject(cur)) return undefined;
    cur = cur[p];
  }
  return cur;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function int(v: unknown): string {
  return typeof v === 'number' && Number.isFinite(v) ? String(Math.trunc(v)) : '0';
}

function bool(v: unknown): string {
  return v === true ? 'true' : 'false';
}

const REFERENCE_FIELDS = [
  'kind',
  'namespace',
  'name',
  'uid',
  'apiVersion',
  'resourceVersion',
  'fieldPath',
] as const;

/**
 * The field set Kubernetes exposes to field selectors for an object of this group and kind
 * (`ToSelectableFields` in each registry). Every kind has `metadata.name` and `metadata.namespace`.
 */
export function fieldsOf(group: string, kind: string, obj: KubeObject): Record<string, string> {
  const fields: Record<string, string> = {
    'metadata.name': str(obj.metadata.name),
    'metadata.namespace': str(obj.metadata.namespace),
  };
  if (group === '') {
    switch (kind) {
      case 'Pod': {
        const podIPs = at(obj, 'status', 'podIPs');
        const first = Array.isArray(podIPs) ? at(podIPs[0], 'ip') : undefined;
        fields['spec.nodeName'] = str(at(obj, 'spec', 'nodeName'));
        fields['spec.restartPolicy'] = str(at(obj, 'spec', 'restartPolicy'));
        fields['spec.schedulerName'] = str(at(obj, 'spec', 'schedulerName'));
        fields['spec.serviceAccountName'] = str(at(obj, 'spec', 'serviceAccountName'));
        fields['spec.hostNetwork'] = bool(at(obj, 'spec', 'hostNetwork'));
        fields['status.phase'] = str(at(obj, 'status', 'phase'));
        fields['status.podIP'] = str(first) || str(at(obj, 'status', 'podIP'));
        fields['status.nominatedNodeName'] = str(at(obj, 'status', 'nominatedNodeName'));
        break;
      }
      case 'Event': {
        for (const f of REFERENCE_FIELDS) fields[`involvedObject.${f}`] = str(at(obj, 'involvedObject', f));
        fields['reason'] = str(obj['reason']);
        fields['reportingComponent'] = str(obj['reportingComponent']);
        fields['source'] = str(at(obj, 'source', 'component')) || str(obj['reportingComponent']);
        fields['type'] = str(obj['type']);
        break;
      }
      case 'Node':
        fields['spec.unschedulable'] = bool(at(obj, 'spec', 'unschedulable'));
        break;
      case 'Secret':
        fields['type'] = str(obj['type']);
        break;
      case 'Namespace':
        fields['status.phase'] = str(at(obj, 'status', 'phase'));
        break;
    }
  } else if (group === 'events.k8s.io' && kind === 'Event') {
    for (const f of REFERENCE_FIELDS) fields[`regarding.${f}`] = str(at(obj, 'regarding', f));
    fields['reason'] = str(obj['reason']);
    fields['reportingController'] = str(obj['reportingController']);
    fields['type'] = str(obj['type']);
  } else if (group === 'apps' && kind === 'ReplicaSet') {
    fields['status.replicas'] = int(at(obj, 'status', 'replicas'));
  } else if (group === 'batch' && kind === 'Job') {
    fields['status.successful'] = int(at(obj, 'status', 'succeeded'));
  }
  return fields;
}

const EMPTY: KubeObject = { metadata: {} };

/** The field labels a kind supports in field selectors. */
export function supportedFieldLabels(group: string, kind: string): readonly string[] {
  return Object.keys(fieldsOf(group, kind, EMPTY));
}

/** Fail with `field label not supported: <label>` (KEDGE_SELECTOR_INVALID) for a label the kind lacks. */
export function checkFieldSelectorSupported(sel: FieldSelector, group: string, kind: string): void {
  const supported = new Set(supportedFieldLabels(group, kind));
  for (const r of sel.requirements) {
    if (!supported.has(r.field)) {
      throw invalid(`field label not supported: ${r.field}`, { field: r.field, group, kind });
    }
  }
}
