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
// Memory: a page is read an item at a time. Its text is scanned for the
// `items` array, each item is parsed on its own (JSON.parse of its slice of
// the text) and at once reduced to what its row needs: a price-list item to
// its id and its `data` text, a stock item to its id and balance. The
// parsed items never pile up, which matters because the JavaScript
// engine's own heap runs out well before the sandbox's memory cap (its "out
// of memory" ends in a trap). A page that is not shaped as the scan expects
// (a non-object item, an item whose end takes more than MAX_TRIES tries to
// find, malformed JSON) is read again whole with JSON.parse, which
// gives the precise error.

import { log } from 'bitcram:transform/log@0.1.0';

const ORDER = { checkout: 0, stock: 1, 'price-list': 2 };
const decoder = new TextDecoder('utf-8', { fatal: true });

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const SPACE = /[ \t\n\r]*/y;
const KEY_END = /[ \t\n\r]*:[ \t\n\r]*/y;
// A JSON string, or a bracket: what the envelope's scan needs to see.
const TOKEN = /"(?:[^"\\]|\\[\s\S])*"|[{}\[\]]/g;
// How many closing braces an item's scan tries before the page is read whole.
const MAX_TRIES = 32;

function skipSpace(text, at) {
  SPACE.lastIndex = at;
  SPACE.test(text);
  return SPACE.lastIndex;
}

// Whether the string token that ends at `end` is a member name, and that
// name is `items`; if so, KEY_END.lastIndex is where its value starts.
function isItemsKey(text, token, end) {
  KEY_END.lastIndex = end;
  if (!KEY_END.test(text)) return false;
  try {
    return JSON.parse(token) === 'items';
  } catch {
    return false;
  }
}

// The offset just inside the page's top-level `items` array, or -1 when the
// page is not an object whose `items` member is an array.
function itemsStart(text) {
  const at = skipSpace(text, 0);
  if (text.charCodeAt(at) !== OPEN_BRACE) return -1;
  TOKEN.lastIndex = at + 1;
  let depth = 1;
  for (let m; (m = TOKEN.exec(text)) !== null; ) {
    const token = m[0];
    if (token === '{' || token === '[') depth++;
    else if (token === '}' || token === ']') {
      if (--depth === 0) return -1;
    } else if (depth === 1 && isItemsKey(text, token, TOKEN.lastIndex)) {
      const value = KEY_END.lastIndex;
      return text.charCodeAt(value) === OPEN_BRACKET ? value + 1 : -1;
    }
  }
  return -1;
}

// Whether an `items` member follows `from` (just after the items array) at
// the top level of the page.
function hasItemsKey(text, from) {
  TOKEN.lastIndex = from;
  let depth = 1;
  for (let m; (m = TOKEN.exec(text)) !== null; ) {
    const token = m[0];
    if (token === '{' || token === '[') depth++;
    else if (token === '}' || token === ']') depth--;
    else if (depth === 1 && isItemsKey(text, token, TOKEN.lastIndex)) return true;
  }
  return false;
}

// The object whose text starts at `at` (a '{'), parsed; parsedEnd is then
// the offset after it. A '}' after `at` is tried as its end once as many
// '}' as '{' lie between (braces inside strings make that count wrong:
// then a try fails, or none is made): the first end at which the slice
// parses is the object's own closing brace. undefined when none of
// MAX_TRIES tries is.
let parsedEnd = 0;
function parseObjectAt(text, at) {
  let opens = 1;
  let nextOpen = text.indexOf('{', at + 1);
  let closes = 0;
  let close = at;
  for (let tries = 0; tries < MAX_TRIES; ) {
    close = text.indexOf('}', close + 1);
    if (close < 0) return undefined;
    closes++;
    while (nextOpen >= 0 && nextOpen < close) {
      opens++;
      nextOpen = text.indexOf('{', nextOpen + 1);
    }
    if (closes < opens) continue;
    tries++;
    try {
      const value = JSON.parse(text.slice(at, close + 1));
      parsedEnd = close + 1;
      return value;
    } catch {
      // not its end yet
    }
  }
  return undefined;
}

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
    this.pageIds = [];
  }

  push(source, page) {
    if (this.finished) throw { tag: 'protocol', val: `a ${source} page was pushed after finish` };
    if (this.lastSource !== undefined && ORDER[source] < ORDER[this.lastSource]) {
      throw { tag: 'protocol', val: `a ${source} page was pushed after a ${this.lastSource} page; push checkout, then stock, then price list` };
    }
    this.lastSource = source;
    const number = this.pages[source] ?? 0;
    this.pages[source] = number + 1;
    const text = this.decode(source, number, page);
    if (source === 'checkout') {
      this.parseWhole(source, number, text);
      return;
    }
    const add = source === 'stock'
      ? (index, item) => this.addStock(number, index, item)
      : (index, item) => this.addPriceListItem(number, index, item);
    const mark = this.mark();
    if (!this.eachItem(source, number, text, add)) {
      // Undo what the scan added, then read the page whole.
      this.rewind(source, mark);
      const items = this.items(source, number, this.parseWhole(source, number, text));
      for (let index = 0; index < items.length; index++) add(index, items[index]);
    }
  }

  decode(source, number, page) {
    try {
      return decoder.decode(page);
    } catch (e) {
      throw inputError('malformed-body', source, number, `not valid JSON: ${e.message}`);
    }
  }

  parseWhole(source, number, text) {
    try {
      return JSON.parse(text);
    } catch (e) {
      throw inputError('malformed-body', source, number, `not valid JSON: ${e.message}`);
    }
  }

  // Calls add(index, item) for each item of the page's `items` array, an
  // item at a time, and checks the rest of the page (the envelope) with the
  // array left empty. Returns false, having added some items or none, when
  // the page is not shaped as the scan expects.
  eachItem(source, number, text, add) {
    const start = itemsStart(text);
    if (start < 0) return false;
    let at = skipSpace(text, start);
    let count = 0;
    if (text.charCodeAt(at) !== CLOSE_BRACKET) {
      for (;;) {
        if (text.charCodeAt(at) !== OPEN_BRACE) return false;
        const item = parseObjectAt(text, at);
        if (item === undefined) return false;
        add(count++, item);
        at = skipSpace(text, parsedEnd);
        const next = text.charCodeAt(at);
        if (next === CLOSE_BRACKET) break;
        if (next !== COMMA) return false;
        at = skipSpace(text, at + 1);
      }
    }
    let envelope;
    try {
      envelope = JSON.parse(text.slice(0, start) + text.slice(at));
    } catch {
      return false;
    }
    // A second `items` member after the first (the last one counts in JSON.parse).
    if (!Array.isArray(envelope.items) || envelope.items.length !== 0 || hasItemsKey(text, at + 1)) return false;
    this.checkCounts(source, number, envelope, count);
    return true;
  }

  checkCounts(source, number, body, carried) {
    for (const name of ['count', 'total']) {
      const value = body[name];
      const reported = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
      if (reported > carried) {
        throw inputError('malformed-body', source, number, `\`${name}\` says ${reported} items but the page carries ${carried}: the list is incomplete`);
      }
    }
  }

  items(source, number, body) {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw inputError('malformed-body', source, number, 'expected an object with an `items` array');
    }
    const items = body.items;
    if (!Array.isArray(items)) throw inputError('malformed-body', source, number, 'no `items` array');
    this.checkCounts(source, number, body, items.length);
    items.forEach((item, index) => {
      if (item === null || typeof item !== 'object' || Array.isArray(item)) {
        throw inputError('invalid-item', source, number, 'not a JSON object', { item: index });
      }
    });
    return items;
  }

  // What a page's scan changes, so that it can be undone.
  mark() {
    this.pageIds = [];
    return { pending: this.pending.length, stockItems: this.stockItems, nullBalances: this.nullBalances };
  }

  rewind(source, mark) {
    const ids = source === 'stock' ? this.stock : this.priceListIds;
    for (const id of this.pageIds) ids.delete(id);
    this.pageIds = [];
    this.pending.length = mark.pending;
    this.stockItems = mark.stockItems;
    this.nullBalances = mark.nullBalances;
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
    this.pageIds.push(product);
    this.stockItems++;
  }

  addPriceListItem(number, index, item) {
    if (!('product_id' in item)) {
      throw inputError('invalid-item', 'price-list', number, 'missing', { item: index, field: 'product_id' });
    }
    const product = this.itemId('price-list', number, index, item.product_id, 'product_id');
    if (this.priceListIds.has(product)) throw { tag: 'duplicate-key', val: { source: 'price-list', productId: product } };
    this.priceListIds.add(product);
    this.pageIds.push(product);
    delete item.product_id;
    this.pending.push(product, JSON.stringify(item));
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
    // `pending` holds id, data, id, data, ...
    const rows = [];
    const end = Math.min(this.pending.length, this.next + 2 * maxRows);
    for (let n = this.next; n < end; n += 2) {
      const id = this.pending[n];
      rows.push({ id, data: this.pending[n + 1], stock: BigInt(this.stock.get(id) ?? 0) });
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
