// A stand-in for Hugging Face that serves one file, for `cairn pull`'s tests:
//   GET /api/models/org/repo                  {"siblings": [model.gguf, README.md]}
//   GET /api/models/org/deep                  a listing nested 800 deep (hostile JSON)
//   GET /org/repo/resolve/main/model.gguf     the file, with X-Linked-ETag (its SHA-256) and
//                                             Range support
// Usage: node server.mjs FILE MODE PORT_FILE LOG_FILE
//   MODE cut: the first whole-file answer stops halfway (the connection is destroyed)
//   MODE badsum: X-Linked-ETag names another hash
//   MODE ok: plain
import { createHash } from "node:crypto";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";

const [file, mode, portFile, logFile] = process.argv.slice(2);
const data = readFileSync(file);
let sha = createHash("sha256").update(data).digest("hex");
if (mode === "badsum") sha = sha.replace(/^./, (c) => (c === "0" ? "1" : "0"));
let cut = mode === "cut";

const server = createServer((req, res) => {
  appendFileSync(logFile, `${req.method} ${req.url} range=${req.headers.range ?? "-"}\n`);
  if (req.url === "/api/models/org/repo") {
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({ siblings: [{ rfilename: "model.gguf" }, { rfilename: "README.md" }] }));
    return;
  }
  if (req.url === "/api/models/org/deep") {
    res.setHeader("Content-Type", "application/json");
    res.end(`{"siblings":${"[".repeat(800)}${"]".repeat(800)}}`);
    return;
  }
  if (req.url !== "/org/repo/resolve/main/model.gguf") {
    res.statusCode = 404;
    res.end("not found");
    return;
  }
  let start = 0;
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  if (range) start = Number(range[1]);
  if (start >= data.length) {
    res.statusCode = 416;
    res.end();
    return;
  }
  res.statusCode = range ? 206 : 200;
  res.setHeader("X-Linked-ETag", `"${sha}"`);
  res.setHeader("Content-Length", String(data.length - start));
  if (range) res.setHeader("Content-Range", `bytes ${start}-${data.length - 1}/${data.length}`);
  if (cut && !range) {
    cut = false;
    res.write(data.subarray(0, data.length >> 1), () => res.destroy());
    return;
  }
  res.end(data.subarray(start));
});
server.listen(0, "127.0.0.1", () => writeFileSync(portFile, String(server.address().port)));
