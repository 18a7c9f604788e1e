"""Writes requests/learning_train.jsonl and requests/learning_eval.jsonl, the sets of
`omnistream bench learning`. Each eval request asks for the work of one train request in other
words, with other example inputs (the expected outputs computed by the same reference
implementations, so they are right by construction), and some also rename the fields: what a
store learnt from the train set can help only by meaning, never by an identical prompt.
Run `python3 requests/make_learning.py` after changing one."""

import json
from pathlib import Path

import make_behaviour as b

TRAIN, EVAL = [], []


def pair(train_prompt, eval_prompt, node_type, operations, inputs, outputs, fn, train_in, eval_in,
         rename=None):
    """One task, trained in two wordings (behaviour.jsonl's, then another: a team's history has
    each kind of task more than once) and evaluated in a third."""
    train_prompt, also = train_prompt
    for prompt in (train_prompt, also):
        TRAIN.append({"prompt": prompt, "node_type": node_type, "operations": operations,
                      "input": inputs, "output": outputs, "examples": b.cases(fn, train_in)})
    examples = b.cases(fn, eval_in)
    if rename:
        inputs = {rename.get(k, k): v for k, v in inputs.items()}
        outputs = {rename.get(k, k): v for k, v in outputs.items()}
        for e in examples:
            e["input"] = {rename.get(k, k): v for k, v in e["input"].items()}
            if "output" in e:
                e["output"] = {rename.get(k, k): v for k, v in e["output"].items()}
    EVAL.append({"prompt": eval_prompt, "node_type": node_type, "operations": operations,
                 "input": inputs, "output": outputs, "examples": examples})


pair(("Create file checksum calculator Compute node with SHA-256 of uploaded content",
      "Create content hashing Compute node returning the SHA-256 hex digest and byte length of a string"),
     "Create document fingerprint Compute node giving the SHA-256 digest and byte size of a text",
     "compute", ["checksum"], {"content": "str"}, {"sha256": "str", "size": "int"}, b.checksum,
     [{"content": "abc"}, {"content": ""}], [{"content": "omnistream"}, {"content": "naïve"}])
pair(("Create URL slug converter Compute node with titles of articles",
      "Create slugify Compute node making URL-safe lowercase slugs from article titles"),
     "Create permalink generator Compute node turning blog post titles into lowercase slugs",
     "compute", ["slugify"], {"title": "str"}, {"slug": "str"}, b.slug,
     [{"title": "Hello, World!"}, {"title": "!!!"}],
     [{"title": "Data Planes -- Done Right"}, {"title": "  2026: A Year  "}, {"title": "..."}])
pair(("Create word counter Compute node with words and characters of a text",
      "Create text counter Compute node giving the number of words and of characters of a text"),
     "Create text length statistics Compute node counting the words and characters of a message",
     "compute", ["count"], {"text": "str"}, {"words": "int", "characters": "int"}, b.words,
     [{"text": "the quick brown fox"}, {"text": ""}], [{"text": "one"}, {"text": " a  b  c "}],
     rename={"text": "message"})
pair(("Create temperature converter Compute node with Celsius to Fahrenheit",
      "Create Celsius to Fahrenheit Compute node converting a temperature reading"),
     "Create weather unit conversion Compute node from degrees Celsius to degrees Fahrenheit",
     "compute", ["convert"], {"celsius": "float"}, {"fahrenheit": "float"}, b.fahrenheit,
     [{"celsius": 0}, {"celsius": 100}], [{"celsius": 21.5}, {"celsius": -10}])
pair(("Create VAT calculator Compute node with tax of invoice prices",
      "Create invoice tax Compute node computing the VAT and gross amount of a net price at a percent rate"),
     "Create sales tax Compute node adding value added tax to a net invoice amount",
     "compute", ["calculate"], {"net": "float", "rate": "float"}, {"tax": "float", "gross": "float"},
     b.vat, [{"net": 100, "rate": 20}, {"net": 5, "rate": -1}],
     [{"net": 250, "rate": 19}, {"net": 0.99, "rate": 5.5}, {"net": 1, "rate": -20}])
pair(("Create statistics calculator Compute node with minimum, maximum and mean of three readings",
      "Create readings summary Compute node giving min, max and mean of three numbers"),
     "Create sensor summary Compute node with the smallest, largest and average of three values",
     "compute", ["calculate"], {"x": "float", "y": "float", "z": "float"},
     {"minimum": "float", "maximum": "float", "mean": "float"}, b.stats,
     [{"x": 1, "y": 2, "z": 6}], [{"x": 10, "y": -2, "z": 4}, {"x": 7, "y": 7, "z": 7}])
pair(("Create email address validator Compute node",
      "Create e-mail validation Compute node checking an address and giving its lower-case domain"),
     "Create signup form email check Compute node telling whether an address is well formed",
     "compute", ["validate"], {"address": "str"}, {"valid": "bool", "domain": "str | None"}, b.email,
     [{"address": "ada@Example.org"}, {"address": "not-an-email"}],
     [{"address": "Grace@Navy.MIL"}, {"address": "two@@signs.com"}, {"address": "x@y.io"}])
pair(("Create leap year calculator Compute node",
      "Create leap year checker Compute node for years of the Gregorian calendar"),
     "Create calendar Compute node deciding whether a year has a 29th of February",
     "compute", ["calculate"], {"year": "int"}, {"leap": "bool"}, b.leap,
     [{"year": 2024}, {"year": 1900}], [{"year": 2400}, {"year": 2100}, {"year": 1996}])
pair(("Create palindrome validator Compute node with phrases read both ways",
      "Create palindrome checker Compute node ignoring case, spaces and punctuation"),
     "Create mirror phrase Compute node checking if a sentence reads the same backwards",
     "compute", ["validate"], {"text": "str"}, {"palindrome": "bool"}, b.palindrome,
     [{"text": "A man, a plan, a canal: Panama"}, {"text": "omnistream"}],
     [{"text": "Was it a car or a cat I saw?"}, {"text": "Rust"}], rename={"text": "sentence"})
pair(("Create body mass index calculator Compute node with bands",
      "Create BMI Compute node computing body mass index from weight and height with its band"),
     "Create health metric Compute node with BMI from weight and height and its band",
     "compute", ["calculate"], {"weight_kg": "float", "height_m": "float"},
     {"bmi": "float", "band": "str"}, b.bmi,
     [{"weight_kg": 70, "height_m": 1.75}, {"weight_kg": 70, "height_m": 0}],
     [{"weight_kg": 45, "height_m": 1.7}, {"weight_kg": 95, "height_m": 1.8},
      {"weight_kg": 60, "height_m": -1}])
pair(("Create unique visitor counter Reducer node with distinct user ids per batch",
      "Create distinct count Reducer node counting the unique user ids of a batch"),
     "Create distinct user aggregation Reducer node counting different visitor ids in a batch",
     "reducer", ["aggregate", "reset"], {"user_ids": "list[str]"}, {"distinct": "int"},
     lambda user_ids: b.distinct(user_ids), [{"user_ids": ["u1", "u2", "u1"]}],
     [{"user_ids": ["a", "b", "c", "a", "b"]}, {"user_ids": []}])
pair(("Create sum calculator Compute node with two numbers added",
      "Create adder Compute node summing two numbers"),
     "Create addition Compute node returning the total of two amounts",
     "compute", ["calculate"], {"a": "float", "b": "float"}, {"total": "float"}, b.total,
     [{"a": 2, "b": 3}], [{"a": 0.5, "b": 0.25}, {"a": -7, "b": 7}])

if __name__ == "__main__":
    here = Path(__file__).parent
    for name, rows in (("learning_train.jsonl", TRAIN), ("learning_eval.jsonl", EVAL)):
        out = here / name
        out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        print(f"{len(rows)} requests, {sum(len(r['examples']) for r in rows)} examples -> {out}")
