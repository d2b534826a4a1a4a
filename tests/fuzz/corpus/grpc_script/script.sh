#!/usr/bin/env bash
set -euo pipefail
cd /app
cat > /app/imports.json <<'EOF'
[{"location":"@s/a.py","url":"https://store/a.py?X-Amz-Signature=abc","headers":{}}]
EOF
curl -fsSL 'https://store/a.py?X-Amz-Signature=abc' -o /app/imports/a.py
cat > /app/udf.py <<'UDF_CODE_EOF'
def f(x):
    return x
UDF_CODE_EOF
exec python /app/server.py
