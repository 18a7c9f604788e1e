"""Writes requests/behaviour.jsonl: requests with declared fields and examples, for every node
type. Each expected output is computed here by a reference implementation, so an example is
right by construction; run `python3 requests/make_behaviour.py` after changing one."""

import hashlib
import json
import re
from pathlib import Path

REQUESTS = []


def request(prompt, node_type, operations, inputs, outputs, examples):
    REQUESTS.append({"prompt": prompt, "node_type": node_type, "operations": operations,
                     "input": inputs, "output": outputs, "examples": examples})


def cases(fn, inputs, error=None):
    out = []
    for i in inputs:
        try:
            out.append({"input": i, "output": fn(**i)})
        except ValueError as e:
            out.append({"input": i, "error": str(e)})
    return out


# --- compute -------------------------------------------------------------------------------
def checksum(content):
    return {"sha256": hashlib.sha256(content.encode()).hexdigest(), "size": len(content.encode())}


request("Create file checksum calculator Compute node with SHA-256 of uploaded content", "compute",
        ["checksum"], {"content": "str"}, {"sha256": "str", "size": "int"},
        cases(checksum, [{"content": "abc"}, {"content": ""}, {"content": "héllo"}]))


def slug(title):
    s = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    if not s:
        raise ValueError("nothing to slugify")
    return {"slug": s}


request("Create URL slug converter Compute node with titles of articles", "compute", ["slugify"],
        {"title": "str"}, {"slug": "str"},
        cases(slug, [{"title": "Hello, World!"}, {"title": "  Rust & Python 3  "}, {"title": "!!!"}]))


def words(text):
    ws = text.split()
    return {"words": len(ws), "characters": len(text)}


request("Create word counter Compute node with words and characters of a text", "compute", ["count"],
        {"text": "str"}, {"words": "int", "characters": "int"},
        cases(words, [{"text": "the quick brown fox"}, {"text": ""}, {"text": "  spaced   out  "}]))


def fahrenheit(celsius):
    return {"fahrenheit": round(celsius * 9 / 5 + 32, 2)}


request("Create temperature converter Compute node with Celsius to Fahrenheit", "compute",
        ["convert"], {"celsius": "float"}, {"fahrenheit": "float"},
        cases(fahrenheit, [{"celsius": 0}, {"celsius": 100}, {"celsius": -40}, {"celsius": 36.6}]))


def vat(net, rate):
    if rate < 0:
        raise ValueError("rate must not be negative")
    tax = round(net * rate / 100, 2)
    return {"tax": tax, "gross": round(net + tax, 2)}


request("Create VAT calculator Compute node with tax of invoice prices", "compute", ["calculate"],
        {"net": "float", "rate": "float"}, {"tax": "float", "gross": "float"},
        cases(vat, [{"net": 100, "rate": 20}, {"net": 19.99, "rate": 7}, {"net": 5, "rate": -1}]))


def total(a, b):
    return {"total": a + b}


request("Create sum calculator Compute node with two numbers added", "compute", ["calculate"],
        {"a": "float", "b": "float"}, {"total": "float"},
        cases(total, [{"a": 2, "b": 3}, {"a": -1.5, "b": 1.25}]))


def stats(x, y, z):
    values = [x, y, z]
    return {"minimum": min(values), "maximum": max(values), "mean": round(sum(values) / 3, 6)}


request("Create statistics calculator Compute node with minimum, maximum and mean of three readings",
        "compute", ["calculate"], {"x": "float", "y": "float", "z": "float"},
        {"minimum": "float", "maximum": "float", "mean": "float"},
        cases(stats, [{"x": 1, "y": 2, "z": 6}, {"x": -3, "y": 0.5, "z": 0.5}]))


def email(address):
    ok = re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", address) is not None
    return {"valid": ok, "domain": address.split("@")[-1].lower() if ok else None}


request("Create email address validator Compute node", "compute", ["validate"],
        {"address": "str"}, {"valid": "bool", "domain": "str | None"},
        cases(email, [{"address": "ada@Example.org"}, {"address": "not-an-email"},
                      {"address": "a@b"}]))


def leap(year):
    return {"leap": year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)}


request("Create leap year calculator Compute node", "compute", ["calculate"],
        {"year": "int"}, {"leap": "bool"},
        cases(leap, [{"year": 2024}, {"year": 1900}, {"year": 2000}, {"year": 2023}]))


def palindrome(text):
    letters = [c.lower() for c in text if c.isalnum()]
    return {"palindrome": letters == letters[::-1]}


request("Create palindrome validator Compute node with phrases read both ways", "compute", ["validate"],
        {"text": "str"}, {"palindrome": "bool"},
        cases(palindrome, [{"text": "A man, a plan, a canal: Panama"}, {"text": "omnistream"}]))


def bmi(weight_kg, height_m):
    if height_m <= 0:
        raise ValueError("height must be positive")
    value = round(weight_kg / height_m ** 2, 1)
    band = "underweight" if value < 18.5 else "normal" if value < 25 else "overweight"
    return {"bmi": value, "band": band}


request("Create body mass index calculator Compute node with bands", "compute", ["calculate"],
        {"weight_kg": "float", "height_m": "float"}, {"bmi": "float", "band": "str"},
        cases(bmi, [{"weight_kg": 70, "height_m": 1.75}, {"weight_kg": 50, "height_m": 1.8},
                    {"weight_kg": 90, "height_m": 1.7}, {"weight_kg": 70, "height_m": 0}]))

# --- reducer -------------------------------------------------------------------------------
request("Create account balance aggregator Reducer node with running total per account", "reducer",
        ["aggregate", "reset"], {"key": "str", "amount": "float"}, {"sum": "float", "count": "int"},
        [{"before": [{"input": {"key": "acct-1", "amount": 10}}, {"input": {"key": "acct-2", "amount": 99}}],
          "input": {"key": "acct-1", "amount": 5.5}, "output": {"sum": 15.5, "count": 2}},
         {"input": {"key": "acct-9", "amount": -3}, "output": {"sum": -3, "count": 1}}])

request("Create temperature range aggregator Reducer node with readings per sensor", "reducer",
        ["aggregate", "reset"], {"key": "str", "reading": "float"}, {"min": "float", "max": "float"},
        [{"before": [{"input": {"key": "s1", "reading": 20.5}}, {"input": {"key": "s1", "reading": 18}}],
          "input": {"key": "s1", "reading": 25}, "output": {"min": 18, "max": 25}}])

request("Create page view counter Reducer node with views per page", "reducer", ["count", "reset"],
        {"key": "str", "views": "int"}, {"key": "str", "key_count": "int"},
        [{"before": [{"input": {"key": "/home", "views": 1}}, {"input": {"key": "/about", "views": 1}}],
          "input": {"key": "/home", "views": 1}, "output": {"key": "/home", "key_count": 2}}])


def distinct(events):
    return {"distinct": len(set(events))}


request("Create unique visitor counter Reducer node with distinct user ids per batch", "reducer",
        ["aggregate", "reset"], {"user_ids": "list[str]"}, {"distinct": "int"},
        [{"input": {"user_ids": ["u1", "u2", "u1"]}, "output": {"distinct": 2}},
         {"input": {"user_ids": []}, "output": {"distinct": 0}}])

request("Create shopping cart state reducer with item quantities per cart", "reducer",
        ["add_item", "reset"], {"key": "str", "sku": "str", "quantity": "int"},
        {"items": "dict[str, int]", "total_quantity": "int"},
        [{"before": [{"input": {"key": "cart-1", "sku": "apple", "quantity": 2}}],
          "input": {"key": "cart-1", "sku": "pear", "quantity": 1},
          "output": {"items": {"apple": 2, "pear": 1}, "total_quantity": 3}},
         {"before": [{"input": {"key": "cart-2", "sku": "fig", "quantity": 1}}],
          "input": {"key": "cart-2", "sku": "fig", "quantity": 4},
          "output": {"items": {"fig": 5}, "total_quantity": 5}}])

request("Create moving average accumulator Reducer node with mean price per key", "reducer",
        ["aggregate", "reset"], {"key": "str", "price": "float"}, {"mean": "float"},
        [{"before": [{"input": {"key": "BTC", "price": 100}}, {"input": {"key": "BTC", "price": 110}}],
          "input": {"key": "BTC", "price": 120}, "output": {"mean": 110}}])

request("Create error rate reducer with failures over calls per service", "reducer",
        ["record", "reset"], {"key": "str", "failed": "bool"}, {"calls": "int", "error_rate": "float"},
        [{"before": [{"input": {"key": "api", "failed": False}}, {"input": {"key": "api", "failed": True}},
                     {"input": {"key": "api", "failed": False}}],
          "input": {"key": "api", "failed": True}, "output": {"calls": 4, "error_rate": 0.5}}])

# --- effect (the in-memory client stands in for the service) -------------------------------
request("Create key value store writer Effect node", "effect", ["write", "read"],
        {"key": "str", "value": "int | None"}, {"stored": "bool", "records": "int"},
        [{"before": [{"operation": "write", "input": {"key": "a", "value": 1}}],
          "operation": "write", "input": {"key": "b", "value": 2}, "output": {"stored": True, "records": 2}},
         {"operation": "write", "input": {"key": "a", "value": 1}, "output": {"stored": True, "records": 1}}])

request("Create key value store reader Effect node", "effect", ["write", "read"],
        {"key": "str", "value": "int | None"}, {"found": "bool"},
        [{"before": [{"operation": "write", "input": {"key": "a", "value": 1}}],
          "operation": "read", "input": {"key": "a"}, "output": {"found": True}},
         {"operation": "read", "input": {"key": "missing"}, "output": {"found": False}}])

request("Create session cache Effect node with delete", "effect", ["write", "delete"],
        {"key": "str", "user": "str | None"}, {"removed": "bool"},
        [{"before": [{"operation": "write", "input": {"key": "s1", "user": "ada"}}],
          "operation": "delete", "input": {"key": "s1"}, "output": {"removed": True}},
         {"operation": "delete", "input": {"key": "s2"}, "output": {"removed": False}}])

request("Create user profile writer Effect node with PostgreSQL and upper-case country codes",
        "effect", ["write"], {"key": "str", "country": "str"}, {"stored": "bool", "country": "str"},
        [{"input": {"key": "u1", "country": "de"}, "output": {"stored": True, "country": "DE"}}])

request("Create rate limited email sender Effect node with at most 2 sends per recipient", "effect",
        ["send"], {"recipient": "str", "subject": "str"}, {"sent": "bool", "sends": "int"},
        [{"before": [{"input": {"recipient": "a@x.org", "subject": "hi"}}],
          "input": {"recipient": "a@x.org", "subject": "again"}, "output": {"sent": True, "sends": 2}},
         {"before": [{"input": {"recipient": "b@x.org", "subject": "1"}}, {"input": {"recipient": "b@x.org", "subject": "2"}}],
          "input": {"recipient": "b@x.org", "subject": "3"}, "output": {"sent": False, "sends": 2}}])

request("Create inventory stock reader Effect node with the quantity on hand", "effect",
        ["write", "read"], {"key": "str", "quantity": "int | None"}, {"quantity": "int | None"},
        [{"before": [{"operation": "write", "input": {"key": "sku-1", "quantity": 7}}],
          "operation": "read", "input": {"key": "sku-1"}, "output": {"quantity": 7}},
         {"operation": "read", "input": {"key": "sku-2"}, "output": {"quantity": None}}])

request("Create S3 object uploader Effect node with the object size", "effect",
        ["upload"], {"key": "str", "body": "str"}, {"stored": "bool", "size": "int"},
        [{"input": {"key": "docs/a.txt", "body": "hello"}, "output": {"stored": True, "size": 5}}])

request("Create webhook sender Effect node with https URLs only", "effect", ["send"],
        {"url": "str", "body": "str"}, {"delivered": "bool"},
        [{"input": {"url": "https://example.org/hook", "body": "{}"}, "output": {"delivered": True}},
         {"input": {"url": "http://example.org/hook", "body": "{}"}, "error": "https"}])

# --- orchestrator --------------------------------------------------------------------------
request("Create order approval workflow Orchestrator node with approve totals up to the limit",
        "orchestrator", ["approve"], {"total": "float", "limit": "float"}, {"approved": "bool"},
        [{"input": {"total": 50, "limit": 100}, "output": {"approved": True}},
         {"input": {"total": 150, "limit": 100}, "output": {"approved": False}}])

request("Create checkout pipeline Orchestrator node with its three steps", "orchestrator",
        ["run_pipeline"], {"order_id": "str"}, {"steps": "list[str]"},
        [{"input": {"order_id": "o-1"},
          "output": {"steps": ["validate_input", "run_pipeline", "record_outcome"]}}])

request("Create refund saga Orchestrator node with refund minus a 10 percent fee", "orchestrator",
        ["refund"], {"amount": "float"}, {"refunded": "float", "fee": "float"},
        [{"input": {"amount": 80}, "output": {"refunded": 72, "fee": 8}},
         {"input": {"amount": 0}, "error": "positive"}])

request("Create user onboarding workflow Orchestrator node with welcome mail for verified users",
        "orchestrator", ["run_workflow"], {"email": "str", "verified": "bool"},
        {"welcome_sent": "bool", "steps_run": "int"},
        [{"input": {"email": "a@x.org", "verified": True}, "output": {"welcome_sent": True, "steps_run": 3}},
         {"input": {"email": "b@x.org", "verified": False}, "output": {"welcome_sent": False, "steps_run": 3}}])

request("Create ETL pipeline Orchestrator node with drop rows without an id, count the rest",
        "orchestrator", ["run_pipeline"], {"rows": "list[dict[str, any]]"}, {"kept": "int", "dropped": "int"},
        [{"input": {"rows": [{"id": 1}, {"name": "x"}, {"id": 2, "name": "y"}]}, "output": {"kept": 2, "dropped": 1}},
         {"input": {"rows": []}, "output": {"kept": 0, "dropped": 0}}])

request("Create payment workflow coordinator Orchestrator node with capture after authorise",
        "orchestrator", ["coordinate"], {"amount": "float", "authorised": "bool"},
        {"captured": "bool", "steps": "list[str]"},
        [{"input": {"amount": 10, "authorised": True},
          "output": {"captured": True, "steps": ["validate_input", "coordinate", "record_outcome"]}},
         {"input": {"amount": 10, "authorised": False}, "error": "not authorised"}])

request("Create deployment coordinator Orchestrator node with a count of its recorded steps",
        "orchestrator", ["coordinate"], {"service": "str"}, {"recorded_steps": "int"},
        [{"input": {"service": "api"}, "output": {"recorded_steps": 2}}])

if __name__ == "__main__":
    out = Path(__file__).with_name("behaviour.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in REQUESTS), encoding="utf-8")
    print(f"{len(REQUESTS)} requests, {sum(len(r['examples']) for r in REQUESTS)} examples -> {out}")
