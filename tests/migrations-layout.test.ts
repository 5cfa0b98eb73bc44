import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// A migration's name is its id in every database's history: the file it lives in must carry
// the same name, and every file must be listed, or a rename re-runs it and a forgotten file
// never runs.
const root = new URL('../services/', import.meta.url);
const services = readdirSync(root).filter((s) => readdirSync(new URL(`${s}/src/`, root)).includes('migrations.ts'));

describe('migrations, one file each', () => {
  it.each(services)('%s lists each file of src/migrations/ under its own name', (service) => {
    const index = readFileSync(new URL(`${service}/src/migrations.ts`, root), 'utf8');
    const fileOf = new Map([...index.matchAll(/import \* as (\w+) from '\.\/migrations\/(\w+)\.js';/g)].map((m) => [m[1]!, m[2]!]));
    const entries = [...index.matchAll(/^ {2}'(\w+)': (\w+),$/gm)].map((m) => [m[1]!, fileOf.get(m[2]!)]);
    expect(entries.length).toBeGreaterThan(0);
    for (const [name, file] of entries) expect(file, `migration '${name}' must be imported from ./migrations/${name}.js`).toBe(name);
    const files = readdirSync(new URL(`${service}/src/migrations/`, root)).map((f) => f.replace(/\.ts$/, ''));
    expect(entries.map(([name]) => name).sort()).toEqual(files.sort());
  });
});
