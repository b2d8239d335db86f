"""Runs SQL on Trino through its HTTP protocol (POST /v1/statement, then follow nextUri: no client library needed)
and prints one JSON line per statement: {"sql", "columns": [[name, type]], "rows": [[...]]}, or {"sql", "error"}.

  trino_query.py URL < statements (separated by lines holding only ';')
"""
import json, sys, time, urllib.request


def run(url, sql):
    req = urllib.request.Request(f"{url}/v1/statement", data=sql.encode(), method="POST",
                                 headers={"X-Trino-User": "ticklake", "Content-Type": "text/plain"})
    doc = json.load(urllib.request.urlopen(req, timeout=60))
    columns, rows = None, []
    while True:
        if "error" in doc:
            return {"sql": sql, "error": doc["error"].get("message")}
        if doc.get("columns") and columns is None:
            columns = [[c["name"], c["type"]] for c in doc["columns"]]
        rows += doc.get("data", [])
        nxt = doc.get("nextUri")
        if not nxt:
            return {"sql": sql, "columns": columns or [], "rows": rows}
        doc = json.load(urllib.request.urlopen(urllib.request.Request(nxt, headers={"X-Trino-User": "ticklake"}),
                                               timeout=60))


def main():
    url = sys.argv[1]
    for sql in [s.strip() for s in sys.stdin.read().split("\n;\n") if s.strip()]:
        print(json.dumps(run(url, sql)), flush=True)


if __name__ == "__main__":
    main()
