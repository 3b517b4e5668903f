// The default transform's rules in JavaScript, for componentize-js.
//
// - one row per price-list item, in price-list order, left-joined with the
//   stock on the product id;
// - `id`: the item's `product_id` in canonical form ("0042" and 42 are 42);
// - `data`: the item without `product_id`, every other member kept (as
//   JSON.parse reads it: a number's spelling is not kept, 12345.0 is 12345),
//   compact;
// - `stock`: the stock item's `product_balance` truncated toward zero, 0
//   when there is none or it is null; stock items name their product by
//   `product_id` or `product.id` (both, and different, is an error);
// - stock items for products not in the price list are dropped and counted;
// - a product twice in one source, malformed JSON, a page without an
//   `items` array (or whose `count`/`total` exceeds the items it carries),
//   or an item without a usable product id is an error naming what and where.
//
// Errors are thrown as the contract's `transform-error` variant
// (`{ tag, val }`); u64 and s64 values are BigInt.
//
// Memory: a price-list page is parsed whole (JSON.parse) and its items are
// kept until their rows are taken. The JavaScript engine's own heap runs
// out well before the sandbox's memory cap (its "out of memory" ends in a
// trap), so per-item costs matter: balances are kept as numbers, not
// BigInt, until a row is made, and `data` is the item itself with
// `product_id` deleted, not a copy. That carries a light 100,000-product
// catalog (282 MiB, 21 s); a heavier one still runs the heap out (see the
// README).

import { log } from 'bitcram:transform/log@0.1.0';

const ORDER = { checkout: 0, stock: 1, 'price-list': 2 };
const decoder = new TextDecoder('utf-8', { fatal: true });

function inputError(tag, source, page, message, extra = {}) {
  return {
    tag,
    val: {
      source,
      page,
      item: extra.item,
      productId: extra.productId,
      field: extra.field,
      message,
    },
  };
}

function canonicalId(value) {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value >= 0) return String(value);
    if (Number.isInteger(value) && value >= 0) return BigInt(value).toString();
    throw new Error(`${value} is not a whole non-negative number`);
  }
  if (typeof value === 'string') {
    const digits = value.trim();
    if (!/^[0-9]+$/.test(digits)) throw new Error(`${JSON.stringify(value)} is not a numeric id`);
    if (digits.length < 16) return String(Number(digits));
    const id = BigInt(digits);
    if (id > 18446744073709551615n) throw new Error(`${JSON.stringify(value)} is too large for a product id`);
    return id.toString();
  }
  throw new Error(`${JSON.stringify(value)} is not a number or a numeric string`);
}

function balanceOf(value) {
  const number = typeof value === 'number' ? value : typeof value === 'string' ? Number(value.trim()) : NaN;
  if ((typeof value === 'number' || (typeof value === 'string' && value.trim() !== '')) && Number.isFinite(number) && Math.abs(number) < 9.2e18) {
    return Math.trunc(number) || 0;
  }
  throw new Error(`${JSON.stringify(value)} is not a usable number`);
}

class Transform {
  constructor(_context) {
    this.lastSource = undefined;
    this.pages = {};
    this.stock = new Map();
    this.priceListIds = new Set();
    this.pending = [];
    this.next = 0;
    this.finished = false;
    this.stockItems = 0;
    this.nullBalances = 0;
  }

  push(source, page) {
    if (this.finished) throw { tag: 'protocol', val: `a ${source} page was pushed after finish` };
    if (this.lastSource !== undefined && ORDER[source] < ORDER[this.lastSource]) {
      throw { tag: 'protocol', val: `a ${source} page was pushed after a ${this.lastSource} page; push checkout, then stock, then price list` };
    }
    this.lastSource = source;
    const number = this.pages[source] ?? 0;
    this.pages[source] = number + 1;
    const body = this.parse(source, number, page);
    if (source === 'checkout') return;
    const items = this.items(source, number, body);
    for (let index = 0; index < items.length; index++) {
      if (source === 'stock') this.addStock(number, index, items[index]);
      else this.addPriceListItem(number, index, items[index]);
    }
  }

  parse(source, number, page) {
    try {
      return JSON.parse(decoder.decode(page));
    } catch (e) {
      throw inputError('malformed-body', source, number, `not valid JSON: ${e.message}`);
    }
  }

  items(source, number, body) {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw inputError('malformed-body', source, number, 'expected an object with an `items` array');
    }
    const items = body.items;
    if (!Array.isArray(items)) throw inputError('malformed-body', source, number, 'no `items` array');
    for (const name of ['count', 'total']) {
      const value = body[name];
      const reported = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
      if (reported > items.length) {
        throw inputError('malformed-body', source, number, `\`${name}\` says ${reported} items but the page carries ${items.length}: the list is incomplete`);
      }
    }
    items.forEach((item, index) => {
      if (item === null || typeof item !== 'object' || Array.isArray(item)) {
        throw inputError('invalid-item', source, number, 'not a JSON object', { item: index });
      }
    });
    return items;
  }

  itemId(source, number, index, value, field) {
    try {
      return canonicalId(value);
    } catch (e) {
      throw inputError('invalid-item', source, number, e.message, { item: index, field });
    }
  }

  addStock(number, index, item) {
    const nestedValue = item.product !== null && typeof item.product === 'object' ? item.product.id : undefined;
    const flat = item.product_id == null ? undefined : this.itemId('stock', number, index, item.product_id, 'product_id');
    const nested = nestedValue == null ? undefined : this.itemId('stock', number, index, nestedValue, 'product.id');
    if (flat !== undefined && nested !== undefined && flat !== nested) {
      throw inputError('invalid-item', 'stock', number, `product_id ${flat} and product.id ${nested} disagree`, { item: index, productId: flat, field: 'product.id' });
    }
    const product = flat ?? nested;
    if (product === undefined) {
      throw inputError('invalid-item', 'stock', number, 'missing (neither `product_id` nor `product.id`)', { item: index, field: 'product_id' });
    }
    if (!('product_balance' in item)) {
      throw inputError('invalid-item', 'stock', number, 'missing', { item: index, productId: product, field: 'product_balance' });
    }
    let balance = 0;
    if (item.product_balance === null) {
      this.nullBalances++;
    } else {
      try {
        balance = balanceOf(item.product_balance);
      } catch (e) {
        throw inputError('invalid-item', 'stock', number, e.message, { item: index, productId: product, field: 'product_balance' });
      }
    }
    if (this.stock.has(product)) throw { tag: 'duplicate-key', val: { source: 'stock', productId: product } };
    this.stock.set(product, balance);
    this.stockItems++;
  }

  addPriceListItem(number, index, item) {
    if (!('product_id' in item)) {
      throw inputError('invalid-item', 'price-list', number, 'missing', { item: index, field: 'product_id' });
    }
    const product = this.itemId('price-list', number, index, item.product_id, 'product_id');
    if (this.priceListIds.has(product)) throw { tag: 'duplicate-key', val: { source: 'price-list', productId: product } };
    this.priceListIds.add(product);
    this.pending.push(product, item);
  }

  finish() {
    if (this.finished) throw { tag: 'protocol', val: 'finish was called twice' };
    this.finished = true;
    let dropped = 0n;
    for (const product of this.stock.keys()) if (!this.priceListIds.has(product)) dropped++;
    if (this.nullBalances > 0) {
      log('warn', `${this.nullBalances} stock items had a null product_balance; loaded as 0`);
    }
    const rows = BigInt(this.pending.length / 2);
    return { priceListItems: rows, stockItems: BigInt(this.stockItems), droppedStockItems: dropped, rows };
  }

  nextBatch(maxRows) {
    if (!this.finished && this.lastSource !== 'price-list') return [];
    // `pending` holds id, item, id, item, ...
    const rows = [];
    const end = Math.min(this.pending.length, this.next + 2 * maxRows);
    for (let n = this.next; n < end; n += 2) {
      const id = this.pending[n];
      const item = this.pending[n + 1];
      delete item.product_id;
      rows.push({ id, data: JSON.stringify(item), stock: BigInt(this.stock.get(id) ?? 0) });
      this.pending[n] = this.pending[n + 1] = undefined; // freed as it goes
    }
    this.next = end;
    return rows;
  }
}

export const transformer = {
  info() {
    return { name: 'javascript-transform', version: '0.1.0' };
  },
  Transform,
};
