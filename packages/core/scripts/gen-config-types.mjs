#!/usr/bin/env node
// Generates src/generated/domain-config.ts from schema/domain.schema.json.
//   node scripts/gen-config-types.mjs            write the file
//   node scripts/gen-config-types.mjs --check    exit 1 if the file is out of date (CI)
//   --out <file>                                 target another file (default src/generated/domain-config.ts)
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compile } from 'json-schema-to-typescript';

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const schemaPath = resolve(pkgDir, 'schema/domain.schema.json');

const { values } = parseArgs({
  options: { check: { type: 'boolean', default: false }, out: { type: 'string' } },
});
const outPath = resolve(values.out ?? resolve(pkgDir, 'src/generated/domain-config.ts'));

const bannerComment = `/**
 * GENERATED FILE, DO NOT EDIT.
 * Generated from schema/domain.schema.json by scripts/gen-config-types.mjs;
 * edit the schema and rerun the script instead.
 */`;

const schema = JSON.parse(await readFile(schemaPath, 'utf8'));
const ts = await compile(schema, 'DomainConfig', {
  bannerComment,
  additionalProperties: false,
  cwd: dirname(schemaPath),
});

const shown = relative(process.cwd(), outPath) || outPath;
if (values.check) {
  const current = await readFile(outPath, 'utf8').catch(() => null);
  if (current !== ts) {
    console.error(
      `${shown} is ${current === null ? 'missing' : 'out of date'} with respect to schema/domain.schema.json.\n` +
        `Regenerate it with: node ${relative(process.cwd(), fileURLToPath(import.meta.url))}${values.out ? ` --out ${values.out}` : ''}`,
    );
    process.exit(1);
  }
  console.log(`${shown} is up to date.`);
} else {
  await mkdir(dirname(outPath), { recursive: true });
  await writeFile(outPath, ts);
  console.log(`wrote ${shown}`);
}
