# The peer of `omnistream bench codegen`: the bare work of a generation in Python, as the upstream
# pipeline did it (Jinja2 templates, files written, py_compile), without events, gates or accounting.
# Reads the same template sources and contexts omnistream used; prints seconds on stdout.
import json, os, shutil, sys, time
from multiprocessing import Pool

import jinja2

work, concurrency = sys.argv[1], int(sys.argv[2])
# What to compile, as omnistream's compile_scope: "all" files, the node module of the node types
# whose module the event-bus patch changes ("changed"), or "none".
check = sys.argv[3] if len(sys.argv) > 3 else "all"
templates = json.load(open(os.path.join(work, "peer_templates.json")))
env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
compiled = [(out, env.from_string(src)) for name, out, src in templates if "event_bus" not in name]


def generate(item):
    i, job = item
    ctx, contract = job["context"], job["contract"]
    node = os.path.join(work, "peer_out", "g%d" % i, ctx["node"]["dir_name"])
    staging = node + ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    files = [(out, t.render(**ctx)) for out, t in compiled]
    files.append(("v1_0_0/contract.yaml", contract))
    for out, text in files:
        path = os.path.join(staging, out)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    for out, text in files:
        if out.endswith(".py") and (
            check == "all"
            or (check == "changed" and ctx["node"]["event_bus"] and out == "v1_0_0/node.py")
        ):
            compile(text, out, "exec", dont_inherit=True)
    shutil.rmtree(node, ignore_errors=True)
    os.rename(staging, node)
    return 1


jobs = [json.loads(l) for l in open(os.path.join(work, "peer_inputs.jsonl"))]
shutil.rmtree(os.path.join(work, "peer_out"), ignore_errors=True)
t = time.perf_counter()
with Pool(concurrency) as pool:
    done = sum(pool.map(generate, list(enumerate(jobs)), chunksize=8))
print(json.dumps({"seconds": time.perf_counter() - t, "generations": done}))
