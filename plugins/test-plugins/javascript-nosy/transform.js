// A JavaScript transform that looks for a way out of the sandbox (a test
// plugin). The engine has no file, socket or environment API of its own
// (no `process`, no `require`), and `fetch` is not built in (wasi:http is
// outside the contract); it says what it finds, writes a marker to stdout
// and stderr, and returns one row saying so.

let row;

export const transformer = {
  info() {
    return { name: 'test-javascript-nosy', version: '0.0.0' };
  },
  Transform: class {
    constructor(_context) {}
    push(source, page) {
      if (source !== 'price-list') return;
      console.log('nosy-stdout-marker');
      console.error('nosy-stderr-marker');
      const seen = {
        process: typeof globalThis.process,
        require: typeof globalThis.require,
        Deno: typeof globalThis.Deno,
      };
      seen.fetch = typeof globalThis.fetch;
      // The engine defines `fetch`, but it has no wasi:http to send with
      // (the gate refuses a component importing it): asked to, it calls it.
      const body = JSON.parse(new TextDecoder().decode(page));
      if (body.fetch) fetch(`http://${body.connect}/`);
      row = { id: 'seen', data: JSON.stringify(seen), stock: 0n };
    }
    finish() {
      return { priceListItems: 1n, stockItems: 0n, droppedStockItems: 0n, rows: 1n };
    }
    nextBatch(_maxRows) {
      const rows = row ? [row] : [];
      row = undefined;
      return rows;
    }
  },
};
