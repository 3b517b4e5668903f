#!/usr/bin/env python3
"""Writes the default component's golden cases, one directory per rule of
README.md's "What the default component does": a snapshot (the layout
`bitcram-sync snapshot` writes, sha256 and all) and the expected rows
(`expected.jsonl`) or error (`expected-error.json`).

The cases are written by hand here, from the rules, not from the
component's output. Run it after editing a case; `plugin test` reads the
directories it writes:

    python3 plugins/bitcram-transform/cases/make-cases.py
    cargo run -p bitcram-sync -- plugin test --cases plugins/bitcram-transform/cases
"""

import hashlib
import json
import pathlib
import shutil

HERE = pathlib.Path(__file__).resolve().parent

CHECKOUT = {
    "items": [
        {
            "id": 17,
            "checkout_number": 3,
            "name": "Caja 3",
            "warehouse": {"id": 5},
            "price_list": {"id": 248},
        }
    ]
}


def stock(product_id, balance, by="product_id"):
    item = {"warehouse_id": 5, "product_balance": balance}
    if by in ("product_id", "both"):
        item["product_id"] = product_id
    if by in ("product.id", "both"):
        item["product"] = {"id": product_id}
    return item


def row(id, stock, data):
    return {"id": id, "stock": stock, "data": data}


# name: (price-list body, stock body, expected rows or expected error)
CASES = {
    "left-join-in-price-list-order": (
        {"items": [{"product_id": 3, "price": 30}, {"product_id": 1, "price": 10}, {"product_id": 2, "price": 20}]},
        {"items": [stock(1, 4), stock(2, 9)]},
        [row("3", 0, {"price": 30}), row("1", 4, {"price": 10}), row("2", 9, {"price": 20})],
    ),
    "ids-in-canonical-form": (
        {"items": [{"product_id": "0042", "name": "a"}, {"product_id": 7, "name": "b"}]},
        {"items": [stock(42, 1), stock("007", 2)]},
        [row("42", 1, {"name": "a"}), row("7", 2, {"name": "b"})],
    ),
    "data-keeps-every-field-as-it-came": (
        '{"items":[{"product_id":5,"price":12345.0,"note":null,"tags":["a","b"],'
        '"nested":{"x":1.50},"code":"007","unknown_field":true}]}',
        {"items": []},
        '{"id":"5","stock":0,"data":{"price":12345.0,"note":null,"tags":["a","b"],'
        '"nested":{"x":1.50},"code":"007","unknown_field":true}}\n',
    ),
    "stock-truncated-toward-zero": (
        {"items": [{"product_id": 1}, {"product_id": 2}, {"product_id": 3}, {"product_id": 4}]},
        {"items": [stock(1, 3.75), stock(2, -0.4), stock(3, -2), stock(4, 12)]},
        [row("1", 3, {}), row("2", 0, {}), row("3", -2, {}), row("4", 12, {})],
    ),
    "stock-named-by-product-id-or-product-dot-id": (
        {"items": [{"product_id": 1}, {"product_id": 2}, {"product_id": 3}]},
        {"items": [stock(1, 5, by="product_id"), stock(2, 6, by="product.id"), stock(3, 7, by="both")]},
        [row("1", 5, {}), row("2", 6, {}), row("3", 7, {})],
    ),
    "a-null-balance-is-zero": (
        {"items": [{"product_id": 1}, {"product_id": 2}]},
        {"items": [stock(1, None), stock(2, 8)]},
        [row("1", 0, {}), row("2", 8, {})],
    ),
    "stock-for-products-not-in-the-price-list-is-dropped": (
        {"items": [{"product_id": 1}]},
        {"items": [stock(1, 2), stock(99, 50)]},
        [row("1", 2, {})],
    ),
    "a-product-twice-in-the-price-list-is-an-error": (
        {"items": [{"product_id": 1}, {"product_id": 2}, {"product_id": "01"}]},
        {"items": []},
        {"case": "duplicate-key", "product_id": "1"},
    ),
    "a-product-twice-in-the-stock-is-an-error": (
        {"items": [{"product_id": 1}, {"product_id": 2}]},
        {"items": [stock(2, 1), stock(2, 3, by="product.id")]},
        {"case": "duplicate-key", "product_id": "2"},
    ),
    "malformed-json-is-an-error": (
        '{"items":[{"product_id":1},',
        {"items": []},
        {"case": "malformed-body"},
    ),
    "a-missing-items-array-is-an-error": (
        {"products": [{"product_id": 1}]},
        {"items": []},
        {"case": "malformed-body"},
    ),
    "an-item-without-a-usable-product-id-is-an-error": (
        {"items": [{"product_id": 1}, {"price": 10}]},
        {"items": []},
        {"case": "invalid-item"},
    ),
    "stock-naming-two-different-products-is-an-error": (
        {"items": [{"product_id": 1}]},
        {"items": [{"product_id": 1, "product": {"id": 2}, "warehouse_id": 5, "product_balance": 1}]},
        {"case": "invalid-item", "product_id": "1"},
    ),
}


def text(body):
    return body if isinstance(body, str) else json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def write_case(name, price_list, stock_body, expected):
    case = HERE / name
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir()
    entries = []
    for source, body in (("checkout", CHECKOUT), ("stock", stock_body), ("price-list", price_list)):
        data = text(body).encode()
        file = f"{source}.0.json"
        (case / file).write_bytes(data)
        entries.append(
            {"source": source, "page": 0, "file": file, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
    manifest = {
        "format": "bitcram-sync-snapshot/1",
        "created_at": "2026-12-01T00:00:00.000000Z",
        "bitcram_url": "https://cases.bitcram.invalid",
        "checkout_number": "3",
        "checkout_id": 17,
        "warehouse_id": 5,
        "bodies": entries,
    }
    (case / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if isinstance(expected, dict):
        (case / "expected-error.json").write_text(json.dumps(expected) + "\n")
    elif isinstance(expected, str):
        (case / "expected.jsonl").write_text(expected)
    else:
        lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in expected]
        (case / "expected.jsonl").write_text("".join(line + "\n" for line in lines))


for name, (price_list, stock_body, expected) in CASES.items():
    write_case(name, price_list, stock_body, expected)
print(f"wrote {len(CASES)} cases under {HERE}")
