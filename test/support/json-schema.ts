/**
 * The JSON Schema (2020-12) subset our OpenAPI document uses, for tests: a validator, and
 * fast-check arbitraries of values the schema accepts and of values it refuses.
 * Covered: $ref (into the same document), type (one or a list), const, enum, anyOf, oneOf,
 * allOf, properties, required, additionalProperties, items, minItems, maxItems, minLength,
 * maxLength (in code points), pattern, format (uri, date-time), minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum. Any other keyword makes `validate` throw, so a document
 * that grows a feature this file does not understand fails loudly instead of passing.
 */
import fc from 'fast-check';

export type Schema = Record<string, unknown>;

const understood = new Set([
  '$ref', 'type', 'const', 'enum', 'anyOf', 'oneOf', 'allOf', 'properties', 'required', 'additionalProperties', 'propertyNames', 'items',
  'minItems', 'maxItems', 'minLength', 'maxLength', 'pattern', 'format', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
  'description', 'default', 'title', 'examples',
]);

export function resolve(root: unknown, schema: Schema): Schema {
  let current = schema;
  for (let hops = 0; typeof current.$ref === 'string'; hops++) {
    if (hops > 20 || !current.$ref.startsWith('#/')) throw new Error(`cannot resolve ${current.$ref}`);
    let target: unknown = root;
    for (const part of current.$ref.slice(2).split('/')) target = (target as Record<string, unknown>)[part.replaceAll('~1', '/').replaceAll('~0', '~')];
    if (target === undefined) throw new Error(`dangling ${current.$ref}`);
    const { $ref: _ref, ...siblings } = current;
    current = { ...(target as Schema), ...siblings };
  }
  return current;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

const dateTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/i;

/** Every way `value` breaks `schema`, each with its JSON path; empty when it conforms. */
export function validate(root: unknown, schema: Schema, value: unknown, path = '$'): string[] {
  const s = resolve(root, schema);
  for (const keyword of Object.keys(s)) if (!understood.has(keyword)) throw new Error(`json-schema.ts does not understand "${keyword}" (at ${path})`);
  const errors: string[] = [];
  const fail = (why: string) => errors.push(`${path}: ${why}`);
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    const actual = typeOf(value);
    if (!types.includes(actual) && !(actual === 'integer' && types.includes('number'))) return [`${path}: expected ${types.join('|')}, got ${actual}`];
  }
  if ('const' in s && JSON.stringify(s.const) !== JSON.stringify(value)) fail(`expected ${JSON.stringify(s.const)}`);
  if (Array.isArray(s.enum) && !s.enum.some((option) => JSON.stringify(option) === JSON.stringify(value))) fail(`not one of ${JSON.stringify(s.enum)}`);
  if (Array.isArray(s.allOf)) for (const part of s.allOf as Schema[]) errors.push(...validate(root, part, value, path));
  if (Array.isArray(s.anyOf) && !(s.anyOf as Schema[]).some((part) => validate(root, part, value, path).length === 0)) fail('matches none of anyOf');
  if (Array.isArray(s.oneOf)) {
    const matching = (s.oneOf as Schema[]).filter((part) => validate(root, part, value, path).length === 0).length;
    if (matching !== 1) fail(`matches ${matching} of oneOf, not exactly 1`);
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (typeof s.minLength === 'number' && length < s.minLength) fail(`shorter than ${s.minLength}`);
    if (typeof s.maxLength === 'number' && length > s.maxLength) fail(`longer than ${s.maxLength}`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(value)) fail(`does not match ${s.pattern}`);
    if (s.format === 'uri' && !URL.canParse(value)) fail('not a URI');
    if (s.format === 'date-time' && !(dateTime.test(value) && !Number.isNaN(Date.parse(value)))) fail('not an RFC 3339 date-time');
  }
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) fail(`below ${s.minimum}`);
    if (typeof s.maximum === 'number' && value > s.maximum) fail(`above ${s.maximum}`);
    if (typeof s.exclusiveMinimum === 'number' && value <= s.exclusiveMinimum) fail(`not above ${s.exclusiveMinimum}`);
    if (typeof s.exclusiveMaximum === 'number' && value >= s.exclusiveMaximum) fail(`not below ${s.exclusiveMaximum}`);
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === 'number' && value.length < s.minItems) fail(`fewer than ${s.minItems} items`);
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) fail(`more than ${s.maxItems} items`);
    if (s.items !== undefined) value.forEach((item, index) => errors.push(...validate(root, s.items as Schema, item, `${path}[${index}]`)));
  }
  if (typeOf(value) === 'object') {
    const object = value as Record<string, unknown>;
    const properties = (s.properties ?? {}) as Record<string, Schema>;
    for (const name of (s.required ?? []) as string[]) if (!Object.hasOwn(object, name)) fail(`missing ${name}`);
    for (const [name, member] of Object.entries(object)) {
      if (Object.hasOwn(properties, name)) errors.push(...validate(root, properties[name]!, member, `${path}.${name}`));
      else if (s.additionalProperties === false) fail(`unexpected member ${name}`);
      else if (typeof s.additionalProperties === 'object' && s.additionalProperties !== null) errors.push(...validate(root, s.additionalProperties as Schema, member, `${path}.${name}`));
    }
  }
  return errors;
}

const integerLimit = Number.MAX_SAFE_INTEGER;

function integers(s: Schema): fc.Arbitrary<number> {
  const min = Math.max(typeof s.minimum === 'number' ? s.minimum : typeof s.exclusiveMinimum === 'number' ? s.exclusiveMinimum + 1 : -integerLimit, -integerLimit);
  const max = Math.min(typeof s.maximum === 'number' ? s.maximum : typeof s.exclusiveMaximum === 'number' ? s.exclusiveMaximum - 1 : integerLimit, integerLimit);
  const near = fc.integer({ min: 0, max: Math.min(1_000, max - min) }).map((offset) => min + offset);
  const anywhere = fc.double({ min, max, noNaN: true }).map((value) => Math.min(max, Math.max(min, Math.round(value))));
  return fc.oneof(fc.constantFrom(min, max), near, anywhere);
}

function numbers(s: Schema): fc.Arbitrary<number> {
  const min = typeof s.minimum === 'number' ? s.minimum : typeof s.exclusiveMinimum === 'number' ? s.exclusiveMinimum : -Number.MAX_VALUE;
  const max = typeof s.maximum === 'number' ? s.maximum : typeof s.exclusiveMaximum === 'number' ? s.exclusiveMaximum : Number.MAX_VALUE;
  const inRange = fc.double({ min, max, noNaN: true, noDefaultInfinity: true, minExcluded: typeof s.exclusiveMinimum === 'number', maxExcluded: typeof s.exclusiveMaximum === 'number' });
  return fc.oneof(inRange, integers(s).filter((value) => validate({}, { ...s, type: 'number' }, value).length === 0)).map((value) => (Object.is(value, -0) ? 0 : value));
}

function strings(s: Schema): fc.Arbitrary<string> {
  const minLength = typeof s.minLength === 'number' ? s.minLength : 0;
  const maxLength = typeof s.maxLength === 'number' ? s.maxLength : Math.max(minLength, 40);
  const fits = (value: string) => validate({}, s, value).length === 0;
  if (s.format === 'date-time') return fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2999-12-31T23:59:59Z'), noInvalidDate: true }).map((date) => date.toISOString());
  // The longest allowed, of code points from every plane (one code point may be two UTF-16 units).
  const longest = fc.constantFrom('a', 'é', '\u4e2d', '\u{1F600}').map((character) => character.repeat(maxLength));
  const unit = fc.constantFrom<'grapheme' | 'grapheme-ascii' | 'binary-ascii'>('grapheme', 'grapheme-ascii', 'binary-ascii');
  const short =
    typeof s.pattern === 'string'
      ? fc.stringMatching(new RegExp(s.pattern, 'u'), { size: 'small' })
      : unit.chain((chosen) => fc.string({ unit: chosen, minLength, maxLength: Math.min(maxLength, minLength + 60) }));
  return fc.oneof({ arbitrary: short, weight: 9 }, { arbitrary: longest, weight: 1 }).filter(fits);
}

/** Values `schema` accepts. `depth` bounds recursive schemas (JsonValue). */
export function validValues(root: unknown, schema: Schema, depth = 3): fc.Arbitrary<unknown> {
  const s = resolve(root, schema);
  if ('const' in s) return fc.constant(s.const);
  if (Array.isArray(s.enum)) return fc.constantFrom(...(s.enum as unknown[]));
  if (Array.isArray(s.anyOf) || Array.isArray(s.oneOf)) {
    const parts = ((s.anyOf ?? s.oneOf) as Schema[]).filter((part) => depth > 0 || !['array', 'object'].includes(String(resolve(root, part).type)));
    return fc.oneof(...parts.map((part) => validValues(root, part, depth - 1)));
  }
  const type = Array.isArray(s.type) ? fc.constantFrom(...(s.type as string[])) : fc.constant(typeof s.type === 'string' ? s.type : 'any');
  return type.chain((chosen): fc.Arbitrary<unknown> => {
    switch (chosen) {
      case 'null':
        return fc.constant(null);
      case 'boolean':
        return fc.boolean();
      case 'integer':
        return integers(s);
      case 'number':
        return numbers(s);
      case 'string':
        return strings(s);
      case 'array': {
        const minLength = typeof s.minItems === 'number' ? s.minItems : 0;
        const maxLength = Math.min(typeof s.maxItems === 'number' ? s.maxItems : 5, minLength + 5);
        return fc.array(s.items === undefined ? fc.jsonValue({ maxDepth: 1 }) : validValues(root, s.items as Schema, depth - 1), { minLength, maxLength });
      }
      case 'object': {
        const properties = (s.properties ?? {}) as Record<string, Schema>;
        const required = new Set((s.required ?? []) as string[]);
        const record: Record<string, fc.Arbitrary<unknown>> = {};
        for (const [name, member] of Object.entries(properties)) record[name] = validValues(root, member, depth - 1);
        return fc.record(record, { requiredKeys: [...required].filter((name) => name in properties) });
      }
      default:
        return fc.jsonValue({ maxDepth: 2 });
    }
  });
}

/** Values `schema` refuses: each breaks one of its rules (wrong type, out of range, too long, a missing member…). */
export function invalidValues(root: unknown, schema: Schema): fc.Arbitrary<unknown> {
  const s = resolve(root, schema);
  const candidates: fc.Arbitrary<unknown>[] = [fc.constantFrom<unknown>(null, true, 'x', -1, 1.5, [], {}, '', ' ', '\u0000', 1e308, -1e308)];
  if (typeof s.minimum === 'number') candidates.push(fc.constant(s.minimum - 1));
  if (typeof s.maximum === 'number') candidates.push(fc.constant(s.maximum + 1), fc.constant(s.maximum * 1e10));
  if (typeof s.exclusiveMinimum === 'number') candidates.push(fc.constant(s.exclusiveMinimum));
  if (typeof s.maxLength === 'number') candidates.push(fc.constant('y'.repeat(s.maxLength + 1)));
  if (typeof s.minLength === 'number' && s.minLength > 0) candidates.push(fc.constant(''));
  if (typeof s.pattern === 'string') candidates.push(fc.constantFrom('   ', '\t', 'a\u0001b', 'W/x', '"', 'é'));
  if (typeof s.minItems === 'number') candidates.push(fc.constant([]));
  if (s.type === 'object' && s.properties !== undefined) {
    const properties = s.properties as Record<string, Schema>;
    const names = Object.keys(properties);
    if (names.length > 0) {
      candidates.push(
        fc.tuple(validValues(root, s) as fc.Arbitrary<Record<string, unknown>>, fc.constantFrom(...names)).chain(([valid, name]) =>
          invalidValues(root, properties[name]!).map((bad) => ({ ...valid, [name]: bad })),
        ),
      );
    }
  }
  if (s.type === 'array' && s.items !== undefined) candidates.push(invalidValues(root, s.items as Schema).map((bad) => [bad]));
  return fc.oneof(...candidates).filter((value) => validate(root, s, value).length > 0);
}
