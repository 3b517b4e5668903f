// The default transform's rules in JavaScript, for componentize-js, on the
// item-by-item contract (bitcram:transform@0.2.0).
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
// - a product twice in one source, or an item that is not an object or has
//   no usable product id, is an error naming what and where.
//
// The host reads each body, checks its envelope and hands over the items of
// its `items` array, one JSON text each: JSON.parse reads each one, and the
// transform keeps only the stock balances and the rows not yet taken.
// Every stock item comes before the first price-list item, so a row is made
// as soon as its item arrives.
//
// Errors are thrown as the contract's `transform-error` variant
// (`{ tag, val }`); u64 and s64 values are BigInt.

import { log } from 'bitcram:transform/log@0.2.0';

const SOURCES = ['checkout', 'stock', 'price-list'];

function itemError(source, item, message, extra = {}) {
  return {
    tag: 'invalid-item',
    val: { source, item, productId: extra.productId, field: extra.field, message },
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
    this.ended = 0;
    this.seen = { checkout: 0, stock: 0, 'price-list': 0 };
    this.stock = new Map();
    this.priceListIds = new Set();
    this.ready = [];
    this.finished = false;
    this.stockItems = 0;
    this.nullBalances = 0;
  }

  expectOpen(source, what) {
    if (this.finished) throw { tag: 'protocol', val: `${source}: ${what} after finish` };
    const open = SOURCES[this.ended];
    if (open === undefined) throw { tag: 'protocol', val: `${source}: ${what} after every source had ended` };
    if (open !== source) {
      throw { tag: 'protocol', val: `${source}: ${what} while ${open} was not yet ended; push and end checkout, then stock, then price list` };
    }
  }

  pushItems(source, items) {
    this.expectOpen(source, 'items were pushed');
    const first = this.seen[source];
    this.seen[source] += items.length;
    if (source === 'checkout') return;
    for (let n = 0; n < items.length; n++) {
      const index = first + n;
      const item = JSON.parse(items[n]);
      if (item === null || typeof item !== 'object' || Array.isArray(item)) {
        throw itemError(source, index, 'not a JSON object');
      }
      if (source === 'stock') this.addStock(index, item);
      else this.addPriceListItem(index, item);
    }
  }

  endSource(source) {
    this.expectOpen(source, 'was ended');
    this.ended++;
  }

  itemId(source, index, value, field) {
    try {
      return canonicalId(value);
    } catch (e) {
      throw itemError(source, index, e.message, { field });
    }
  }

  addStock(index, item) {
    const nestedValue = item.product !== null && typeof item.product === 'object' ? item.product.id : undefined;
    const flat = item.product_id == null ? undefined : this.itemId('stock', index, item.product_id, 'product_id');
    const nested = nestedValue == null ? undefined : this.itemId('stock', index, nestedValue, 'product.id');
    if (flat !== undefined && nested !== undefined && flat !== nested) {
      throw itemError('stock', index, `product_id ${flat} and product.id ${nested} disagree`, { productId: flat, field: 'product.id' });
    }
    const product = flat ?? nested;
    if (product === undefined) {
      throw itemError('stock', index, 'missing (neither `product_id` nor `product.id`)', { field: 'product_id' });
    }
    if (!('product_balance' in item)) {
      throw itemError('stock', index, 'missing', { productId: product, field: 'product_balance' });
    }
    let balance = 0;
    if (item.product_balance === null) {
      this.nullBalances++;
    } else {
      try {
        balance = balanceOf(item.product_balance);
      } catch (e) {
        throw itemError('stock', index, e.message, { productId: product, field: 'product_balance' });
      }
    }
    if (this.stock.has(product)) throw { tag: 'duplicate-key', val: { source: 'stock', productId: product } };
    this.stock.set(product, balance);
    this.stockItems++;
  }

  addPriceListItem(index, item) {
    if (!('product_id' in item)) {
      throw itemError('price-list', index, 'missing', { field: 'product_id' });
    }
    const product = this.itemId('price-list', index, item.product_id, 'product_id');
    if (this.priceListIds.has(product)) throw { tag: 'duplicate-key', val: { source: 'price-list', productId: product } };
    this.priceListIds.add(product);
    delete item.product_id;
    this.ready.push({ id: product, data: JSON.stringify(item), stock: BigInt(this.stock.get(product) ?? 0) });
  }

  finish() {
    if (this.finished) throw { tag: 'protocol', val: 'finish was called twice' };
    if (this.ended < SOURCES.length) {
      throw { tag: 'protocol', val: `finish was called before ${SOURCES[this.ended]} was ended` };
    }
    this.finished = true;
    let dropped = 0n;
    for (const product of this.stock.keys()) if (!this.priceListIds.has(product)) dropped++;
    if (this.nullBalances > 0) {
      log('warn', `${this.nullBalances} stock items had a null product_balance; loaded as 0`);
    }
    const rows = BigInt(this.priceListIds.size);
    return { priceListItems: rows, stockItems: BigInt(this.stockItems), droppedStockItems: dropped, rows };
  }

  nextBatch(maxRows) {
    return this.ready.splice(0, maxRows);
  }
}

export const transformer = {
  info() {
    return { name: 'javascript-transform', version: '0.2.0' };
  },
  Transform,
};
