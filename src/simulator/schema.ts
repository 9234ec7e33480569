/**
 * JSON Schema as structured outputs use it: a value that fits a schema (for
 * response_format json_schema and tool-call arguments), and the checks Azure
 * makes of a strict schema before it answers.
 */
export type Schema = Record<string, unknown>;

const MAX_DEPTH = 6;

/** A deterministic value that satisfies `schema`; strings say which property they fill. */
export function sampleOf(schema: unknown, root: unknown = schema, label = 'value', depth = 0): unknown {
  if (!isObject(schema)) return label;
  const ref = typeof schema.$ref === 'string' ? resolveRef(schema.$ref, root) : undefined;
  if (ref !== undefined) return depth >= MAX_DEPTH ? null : sampleOf(ref, root, label, depth + 1);
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  const choices = (schema.anyOf ?? schema.oneOf) as unknown[] | undefined;
  if (Array.isArray(choices) && choices.length > 0) {
    // A recursive schema ends where a branch allows null.
    const pick = depth >= MAX_DEPTH ? choices.find((c) => isObject(c) && c.type === 'null') ?? choices[0] : choices.find((c) => !(isObject(c) && c.type === 'null')) ?? choices[0];
    return sampleOf(pick, root, label, depth + 1);
  }
  switch (typeOf(schema)) {
    case 'object': {
      const properties = isObject(schema.properties) ? schema.properties : {};
      const value: Record<string, unknown> = {};
      for (const [name, sub] of Object.entries(properties)) value[name] = sampleOf(sub, root, name, depth + 1);
      return value;
    }
    case 'array': {
      if (depth >= MAX_DEPTH) return [];
      const count = Math.min(Math.max(num(schema.minItems) ?? 1, 1), num(schema.maxItems) ?? 1);
      return Array.from({ length: count }, () => sampleOf(schema.items, root, label, depth + 1));
    }
    case 'integer':
      return clamp(0, schema, true);
    case 'number':
      return clamp(0.5, schema, false);
    case 'boolean':
      return true;
    case 'null':
      return null;
    default:
      return sampleString(schema, label);
  }
}

/**
 * Azure checks a strict schema before generating: every object must say
 * `additionalProperties: false` and list every property in `required`
 * (Structured outputs, "Supported schemas and limitations",
 * learn.microsoft.com/azure/ai-foundry/openai/how-to/structured-outputs).
 * The message is the one Azure sends (observed with gpt-4o on Azure in
 * dottxt-ai/outlines#844): "Invalid schema for response_format 'default': In
 * context=(), 'additionalProperties' is required to be supplied and to be false."
 * Returns that message without its "Invalid schema for …:" prefix, or undefined.
 */
export function strictSchemaProblem(schema: unknown, root: unknown = schema, path: string[] = [], seen = new Set<unknown>()): string | undefined {
  if (!isObject(schema) || seen.has(schema)) return undefined;
  seen.add(schema);
  const context = `context=(${path.map((p) => `'${p}'`).join(', ')})`;
  if (typeOf(schema) === 'object' || isObject(schema.properties)) {
    if (schema.additionalProperties !== false) return `In ${context}, 'additionalProperties' is required to be supplied and to be false.`;
    const properties = isObject(schema.properties) ? Object.keys(schema.properties) : [];
    const required = Array.isArray(schema.required) ? schema.required : [];
    const missing = properties.find((p) => !required.includes(p));
    if (missing !== undefined) return `In ${context}, 'required' is required to be supplied and to be an array including every key in properties. Missing '${missing}'.`;
  }
  const children: [string[], unknown][] = [];
  if (isObject(schema.properties)) for (const [k, v] of Object.entries(schema.properties)) children.push([[...path, 'properties', k], v]);
  if (schema.items !== undefined) children.push([[...path, 'items'], schema.items]);
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    const list = schema[key];
    if (Array.isArray(list)) list.forEach((v, i) => children.push([[...path, key, String(i)], v]));
  }
  for (const key of ['$defs', 'definitions'] as const) {
    const defs = schema[key];
    if (isObject(defs)) for (const [k, v] of Object.entries(defs)) children.push([[...path, key, k], v]);
  }
  for (const [at, child] of children) {
    const problem = strictSchemaProblem(child, root, at, seen);
    if (problem) return problem;
  }
  return undefined;
}

function resolveRef(ref: string, root: unknown): unknown {
  if (ref === '#') return root;
  const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(ref);
  if (!m || !isObject(root)) return undefined;
  const defs = root[m[1]];
  return isObject(defs) ? defs[m[2]] : undefined;
}

function typeOf(schema: Schema): string | undefined {
  const t = schema.type;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) return (t.find((x) => x !== 'null') ?? t[0]) as string | undefined;
  if (isObject(schema.properties)) return 'object';
  if (schema.items !== undefined) return 'array';
  return undefined;
}

function sampleString(schema: Schema, label: string): string {
  switch (schema.format) {
    case 'date-time': return '2025-01-01T12:00:00Z';
    case 'date': return '2025-01-01';
    case 'time': return '12:00:00';
    case 'email': return 'someone@example.com';
    case 'uuid': return '00000000-0000-4000-8000-000000000000';
    case 'uri': return 'https://example.com/';
  }
  const text = `Simulated ${label}`;
  const min = num(schema.minLength) ?? 0;
  const max = num(schema.maxLength);
  const padded = text.length >= min ? text : text.padEnd(min, '.');
  return max !== undefined ? padded.slice(0, max) : padded;
}

function clamp(preferred: number, schema: Schema, integer: boolean): number {
  let low = num(schema.minimum) ?? (num(schema.exclusiveMinimum) !== undefined ? num(schema.exclusiveMinimum)! + (integer ? 1 : 0.5) : undefined);
  let high = num(schema.maximum) ?? (num(schema.exclusiveMaximum) !== undefined ? num(schema.exclusiveMaximum)! - (integer ? 1 : 0.5) : undefined);
  if (integer) {
    low = low === undefined ? undefined : Math.ceil(low);
    high = high === undefined ? undefined : Math.floor(high);
  }
  let v = preferred;
  if (low !== undefined && v < low) v = low;
  if (high !== undefined && v > high) v = high;
  return v;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function isObject(v: unknown): v is Schema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
