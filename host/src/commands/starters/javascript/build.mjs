// Builds transform.js into a component: node build.mjs [OUT.wasm]
// (componentize-js installed next to it by `npm ci`).
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const out = process.argv[2] ?? '{{name}}.wasm';
const { component } = await componentize({
  sourcePath: here('./transform.js'),
  witPath: here('./wit'),
  worldName: 'transform',
  // wasi:http is outside the contract, and refused by the host; stdio stays
  // on, so that the engine's exceptions reach the job's log.
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(out, component);
console.log(`wrote ${out} (${component.length} bytes)`);
