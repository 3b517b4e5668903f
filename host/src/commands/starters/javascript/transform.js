// {{name}}: a bitcram-sync transform component, built with componentize-js.
//
// It makes one row per price-list item, in price-list order: `id` is the
// item's `product_id` as text, `data` the item without `product_id`, and
// `stock` the `product_balance` of the stock item with the same
// `product_id` (truncated toward zero; 0 when there is none). Change the
// rules in `push`; the golden cases in `cases/` say what the rows must be.
//
// u64 and s64 values are BigInt; enums are strings ('price-list'); an
// error is thrown as the contract's `transform-error` variant, `{ tag, val }`.

import { log } from 'bitcram:transform/log@0.1.0';

const decoder = new TextDecoder('utf-8', { fatal: true });

function inputError(tag, source, page, message, item, field) {
  return { tag, val: { source, page, item, productId: undefined, field, message } };
}

class Transform {
  constructor(context) {
    log('debug', `transform for checkout ${context.checkoutNumber}`);
    this.pages = {};
    this.stock = new Map();
    this.stockItems = 0;
    this.items = []; // [id, data], in price-list order
    this.next = 0;
    this.finished = false;
  }

  push(source, page) {
    const number = this.pages[source] ?? 0;
    this.pages[source] = number + 1;
    let body;
    try {
      body = JSON.parse(decoder.decode(page));
    } catch (e) {
      throw inputError('malformed-body', source, number, `not valid JSON: ${e.message}`);
    }
    if (source === 'checkout') return;
    const items = body?.items;
    if (!Array.isArray(items)) throw inputError('malformed-body', source, number, 'no `items` array');
    items.forEach((item, index) => {
      if (item === null || typeof item !== 'object' || Array.isArray(item)) {
        throw inputError('invalid-item', source, number, 'not a JSON object', index);
      }
      const { product_id: value, ...data } = item;
      if (typeof value !== 'number' && typeof value !== 'string') {
        throw inputError('invalid-item', source, number, 'missing, or not a number or a string', index, 'product_id');
      }
      const id = String(value);
      if (source === 'stock') {
        const balance = item.product_balance;
        this.stock.set(id, typeof balance === 'number' ? Math.trunc(balance) || 0 : 0);
        this.stockItems++;
      } else {
        this.items.push([id, JSON.stringify(data)]);
      }
    });
  }

  finish() {
    if (this.finished) throw { tag: 'protocol', val: 'finish was called twice' };
    this.finished = true;
    const listed = new Set(this.items.map(([id]) => id));
    let dropped = 0n;
    for (const id of this.stock.keys()) if (!listed.has(id)) dropped++;
    const rows = BigInt(this.items.length);
    return { priceListItems: rows, stockItems: BigInt(this.stockItems), droppedStockItems: dropped, rows };
  }

  nextBatch(maxRows) {
    if (!this.finished) return [];
    const batch = this.items.slice(this.next, this.next + maxRows);
    this.next += batch.length;
    return batch.map(([id, data]) => ({ id, data, stock: BigInt(this.stock.get(id) ?? 0) }));
  }
}

export const transformer = {
  info() {
    return { name: '{{name}}', version: '0.1.0' };
  },
  Transform,
};
