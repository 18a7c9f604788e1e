"""The peer of `omnistream bench patterns`: FAISS HNSW over the same vectors and queries, with the
same exact top k as ground truth, searched at several efSearch values. Usage: patterns_peer.py WORK
DIM K; prints one JSON object."""
import json
import sys
import time

import faiss
import numpy as np

work, dim, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
vectors = np.fromfile(f"{work}/vectors.f32", dtype="<f4").reshape(-1, dim)
queries = np.fromfile(f"{work}/queries.f32", dtype="<f4").reshape(-1, dim)
exact = np.fromfile(f"{work}/exact.i64", dtype="<i8").reshape(len(queries), -1)
index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
t = time.perf_counter()
index.add(vectors)
build = time.perf_counter() - t
faiss.omp_set_num_threads(1)  # one query at a time, as the store answers them
pick = lambda xs, p: xs[round((len(xs) - 1) * p)]
searches = []
# Several breadths, so the store can be compared at equal recall as well as at equal settings.
for ef in (64, 128, 256, 512):
    index.hnsw.efSearch = ef
    latencies, found = [], 0
    for q, truth in zip(queries, exact):
        t = time.perf_counter()
        _, ids = index.search(q.reshape(1, -1), k)
        latencies.append((time.perf_counter() - t) * 1000)
        found += len(set(ids[0].tolist()) & set(truth.tolist()))
    latencies.sort()
    searches.append({"ef": ef, "p50_ms": pick(latencies, 0.5), "p99_ms": pick(latencies, 0.99),
                     "recall": found / (len(queries) * k)})
print(json.dumps({"build_s": build, "rows_per_s": len(vectors) / build, "searches": searches}))
