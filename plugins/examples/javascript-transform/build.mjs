// Builds transform.js into a component: node build.mjs OUT.wasm
// (componentize-js installed next to it by `npm ci`). The contract's WIT is
// read from ../../../wit/0.2.0, or from $BITCRAM_WIT_DIR.
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const out = process.argv[2] ?? 'javascript-transform.wasm';
const { component } = await componentize({
  sourcePath: here('./transform.js'),
  witPath: process.env.BITCRAM_WIT_DIR ?? here('../../../wit/0.2.0'),
  worldName: 'transform',
  // wasi:http is outside the contract; stdio stays on, so that the
  // engine's exceptions reach the job's log.
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(out, component);
console.log(`wrote ${out} (${component.length} bytes)`);
