// Domain config validation: the JSON Schema (schema/domain.schema.json) via ajv,
// plus the semantic checks a schema can't express, plus drivers' own sections.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type AnySchemaObject, type ErrorObject, type SchemaObject, type ValidateFunction } from 'ajv';
import { VirtkitError, type FieldError } from '../errors.js';
import type { DomainConfig } from '../generated/domain-config.js';

export type { DomainConfig } from '../generated/domain-config.js';

/** The directory holding this package's package.json (works from src/ and dist/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return dir;
}

/** The domain config JSON Schema (draft-07), as published. */
export const domainSchema: SchemaObject = JSON.parse(
  readFileSync(join(packageRoot(), 'schema', 'domain.schema.json'), 'utf8'),
);

const escape = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');
const child = (pointer: string, key: string | number) => `${pointer}/${escape(String(key))}`;
const list = (values: unknown[]) => values.map((v) => JSON.stringify(v)).join(', ');
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const TYPE_NOUNS: Record<string, string> = {
  integer: 'an integer', number: 'a number', string: 'a string', boolean: 'a boolean',
  object: 'an object', array: 'an array', null: 'null',
};

/** "an integer between 1 and 4096", "an integer >= 1", "a string or null". */
function noun(schema: AnySchemaObject): string {
  const types: string[] = [schema.type ?? []].flat();
  let text = types.map((t) => TYPE_NOUNS[t] ?? t).join(' or ') || 'a number';
  const { minimum: min, maximum: max, exclusiveMinimum: xmin, exclusiveMaximum: xmax } = schema;
  if (min !== undefined && max !== undefined) return `${text} between ${min} and ${max}`;
  const bounds = [
    min !== undefined && `>= ${min}`, xmin !== undefined && `> ${xmin}`,
    max !== undefined && `<= ${max}`, xmax !== undefined && `< ${xmax}`,
  ].filter(Boolean);
  if (bounds.length) text += ` ${bounds.join(' and ')}`;
  return text;
}

/** Resolves a local "#/..." $ref inside `root`. */
function deref(root: AnySchemaObject, schema: AnySchemaObject): AnySchemaObject | undefined {
  if (typeof schema.$ref !== 'string') return schema;
  if (!schema.$ref.startsWith('#')) return undefined;
  let node: unknown = root;
  for (const part of schema.$ref.slice(1).split('/').filter(Boolean)) {
    node = isObject(node) ? node[decodeURIComponent(part).replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
  }
  return isObject(node) ? node : undefined;
}

/** One ajv error as a human FieldError, or undefined for noise (if/then, wrappers). */
function toField(e: ErrorObject, root: AnySchemaObject): FieldError | undefined {
  const at = e.instancePath;
  const p = e.params;
  const ps: AnySchemaObject = e.parentSchema ?? {};
  // propertyNames: ajv reports the inner failure with the offending name attached,
  // then a summary ("property name must be valid") that adds nothing.
  if (e.keyword === 'propertyNames') return undefined;
  if (e.propertyName !== undefined) {
    const inner = toField({ ...e, propertyName: undefined }, root);
    return inner && { pointer: child(at, e.propertyName), message: `invalid property name: ${inner.message}` };
  }
  switch (e.keyword) {
    case 'required':
      return { pointer: child(at, p.missingProperty), message: 'missing required property' };
    case 'dependencies':
      return { pointer: child(at, p.missingProperty), message: `missing property required by "${p.property}"` };
    case 'additionalProperties':
      return { pointer: child(at, p.additionalProperty), message: `unknown property "${p.additionalProperty}"` };
    case 'discriminator': {
      const pointer = child(at, p.tag);
      if (p.tagValue === undefined) return { pointer, message: 'missing required property' };
      if (typeof p.tagValue !== 'string') return { pointer, message: 'must be a string' };
      const tags = ((ps.oneOf ?? []) as AnySchemaObject[]).flatMap((b) => {
        const prop = deref(root, b)?.properties?.[p.tag];
        return prop?.const !== undefined ? [prop.const] : (prop?.enum ?? []);
      });
      return { pointer, message: `must be one of ${list(tags)}` };
    }
    case 'type':
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return { pointer: at, message: `must be ${noun(ps)}` };
    case 'enum':
      return { pointer: at, message: `must be one of ${list(p.allowedValues)}` };
    case 'const':
      return { pointer: at, message: `must be ${JSON.stringify(p.allowedValue)}` };
    case 'pattern':
      return { pointer: at, message: ps['x-patternMessage'] ?? `must match the pattern ${p.pattern}` };
    case 'maxLength':
    case 'minLength':
      return { pointer: at, message: `must be at ${e.keyword === 'maxLength' ? 'most' : 'least'} ${p.limit} characters long` };
    case 'maxItems':
    case 'minItems':
      return { pointer: at, message: `must have at ${e.keyword === 'maxItems' ? 'most' : 'least'} ${p.limit} item${p.limit === 1 ? '' : 's'}` };
    case 'uniqueItems':
      return { pointer: child(at, Math.max(p.i, p.j)), message: `duplicate of ${child(at, Math.min(p.i, p.j))}` };
    case 'false schema':
      return { pointer: at, message: 'is not allowed' };
    case 'if':
      return undefined; // the failing "then"/"else" errors say what is wrong
    default:
      return { pointer: at, message: e.message ?? `fails "${e.keyword}"` };
  }
}

/** Values that must be unique within a list, e.g. disk targets; reports each repeat. */
function uniqueness(items: unknown, key: string, base: string, what: string, normalize = (s: string) => s): FieldError[] {
  if (!Array.isArray(items)) return [];
  const seen = new Map<string, number>();
  const out: FieldError[] = [];
  items.forEach((item, i) => {
    const v = isObject(item) ? item[key] : undefined;
    if (typeof v !== 'string') return;
    const first = seen.get(normalize(v));
    if (first === undefined) seen.set(normalize(v), i);
    else out.push({ pointer: `${base}/${i}/${key}`, message: `duplicate ${what} "${v}" (also at ${base}/${first}/${key})` });
  });
  return out;
}

/** Checks a JSON Schema can't express. Tolerates documents that failed the schema. */
function semanticErrors(doc: unknown): FieldError[] {
  if (!isObject(doc)) return [];
  const out: FieldError[] = [];
  const { memoryMiB, maxMemoryMiB } = doc;
  if (typeof memoryMiB === 'number' && typeof maxMemoryMiB === 'number' && maxMemoryMiB < memoryMiB) {
    out.push({ pointer: '/maxMemoryMiB', message: `must be >= memoryMiB (${memoryMiB})` });
  }
  const devices = isObject(doc.devices) ? doc.devices : {};
  out.push(...uniqueness(devices.disks, 'target', '/devices/disks', 'disk target'));
  out.push(...uniqueness(devices.interfaces, 'mac', '/devices/interfaces', 'MAC address', (m) => m.toLowerCase()));
  return out;
}

export class ConfigValidator {
  // strictRequired is off: `then: { required: ["bridge"] }` names a property declared beside the if/then.
  readonly #ajv = new Ajv({
    allErrors: true, strict: true, strictRequired: false, discriminator: true, useDefaults: false, verbose: true,
  });
  readonly #validate: ValidateFunction<DomainConfig>;
  readonly #driverValidators = new Map<string, ValidateFunction>();

  constructor() {
    this.#ajv.addKeyword('x-patternMessage');
    this.#validate = this.#ajv.compile<DomainConfig>(domainSchema);
  }

  /**
   * Validates a domain config document and returns it typed. `driverSchemas` maps a driver
   * name to the JSON Schema of its `driver.<name>` section; sections of other drivers are
   * left alone. Throws INVALID_CONFIG listing every offending field by JSON pointer.
   */
  validate(doc: unknown, driverSchemas: Record<string, object> = {}): DomainConfig {
    const fields: FieldError[] = [];
    if (!this.#validate(doc)) fields.push(...this.#fields(this.#validate, domainSchema, ''));
    fields.push(...semanticErrors(doc));
    const sections = isObject(doc) && isObject(doc.driver) ? doc.driver : {};
    for (const [name, schema] of Object.entries(driverSchemas)) {
      if (!Object.hasOwn(sections, name)) continue;
      const validate = this.#driverValidator(name, schema);
      if (!validate(sections[name])) fields.push(...this.#fields(validate, schema, child('/driver', name)));
    }
    const unique = [...new Map(fields.map((f) => [`${f.pointer}\0${f.message}`, f])).values()];
    if (unique.length === 0) return doc as DomainConfig;
    const summary = unique.map((f) => `${f.pointer || '(root)'}: ${f.message}`).join('; ');
    const count = unique.length === 1 ? '1 problem' : `${unique.length} problems`;
    throw new VirtkitError('INVALID_CONFIG', `invalid domain config: ${count}: ${summary}`, { fields: unique });
  }

  #fields(validate: ValidateFunction, root: AnySchemaObject, prefix: string): FieldError[] {
    return (validate.errors ?? []).flatMap((e) => {
      const f = toField(e, root);
      return f ? [{ ...f, pointer: prefix + f.pointer }] : [];
    });
  }

  #driverValidator(name: string, schema: object): ValidateFunction {
    const key = JSON.stringify(schema);
    let validate = this.#driverValidators.get(key);
    if (!validate) {
      try {
        validate = this.#ajv.compile(schema);
      } catch (cause) {
        throw new VirtkitError('INVALID_ARGUMENT', `config schema of driver "${name}" does not compile: ${(cause as Error).message}`, { cause });
      }
      this.#driverValidators.set(key, validate);
    }
    return validate;
  }
}
