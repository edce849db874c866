"""The artifact host for test/install/run.sh, on 127.0.0.1 only.

GET /<dir>/<file> serves ROOT/<dir>/<file>; GET /cut/<file> announces the
full length of ROOT/good/<file> but closes after half of it, as a dropped
connection would; GET /slow/<file> sends ROOT/good/<file> in eight parts
half a second apart. Prints the port it listens on, then one line per request
to the log file.

    python3 server.py ROOT LOG
"""
import http.server
import os
import sys
import time

ROOT, LOG = sys.argv[1], sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(LOG, "a") as log:
            log.write(self.path + "\n")
        parts = self.path.lstrip("/").split("/")
        if len(parts) != 2 or ".." in parts:
            return self.send_error(404)
        where, name = parts
        path = os.path.join(ROOT, "good" if where in ("cut", "slow") else where, name)
        if not os.path.isfile(path):
            return self.send_error(404)
        with open(path, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if where == "slow":
            step = len(body) // 8 + 1
            for i in range(0, len(body), step):
                self.wfile.write(body[i : i + step])
                self.wfile.flush()
                time.sleep(0.5)
        else:
            self.wfile.write(body[: len(body) // 2] if where == "cut" else body)
            self.wfile.flush()
        if where == "cut":
            self.close_connection = True

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
