cat > /app/imports.json <<'EOF'
[{"location": "@s/a.py", "url": "https://s/a.py?sig=1", "headers": {"x-amz-sse": "AES256"}}]
EOF
curl -fsSL 'https://s/a.py?sig=1' -o /app/imports/a.py
