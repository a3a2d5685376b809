#!/usr/bin/env bash
# Records the reference filesystem MCP server's tool list (names, required arguments, argument
# types, annotations) into mcp-servers/filesystem/tests/api/reference-tools.json, which the
# filesystem server's tests compare against. Run by hand when the reference changes; the tests
# themselves need no network. Needs node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-2026.8.31}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
npm install --silent --prefix "$work" "@modelcontextprotocol/server-filesystem@$version" >/dev/null
mkdir "$work/allowed"
{
  printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"record","version":"1"}}}'
  printf '%s\n' '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  printf '%s\n' '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
  sleep 2
} | timeout 20 "$work/node_modules/.bin/mcp-server-filesystem" "$work/allowed" 2>/dev/null | tail -1 >"$work/tools.json"
python3 - "$work/tools.json" "$version" <<'PY'
import json, sys
listed = json.load(open(sys.argv[1]))["result"]["tools"]
tools = []
for t in listed:
    s = t["inputSchema"]
    tools.append({
        "name": t["name"],
        "required": sorted(s.get("required", [])),
        "properties": {k: v.get("type") for k, v in sorted(s.get("properties", {}).items())},
        "annotations": t.get("annotations"),
        "outputSchema": bool(t.get("outputSchema")),
    })
out = {"source": f"@modelcontextprotocol/server-filesystem@{sys.argv[2]} tools/list (names, required arguments, argument types, annotations)", "tools": tools}
json.dump(out, open("mcp-servers/filesystem/tests/api/reference-tools.json", "w"), indent=1)
print(f"{len(tools)} tools recorded")
PY
