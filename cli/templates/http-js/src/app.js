// {{name}}: an HTTP service (wasi:http/proxy), made a component by componentize-js.
// Incoming requests arrive as `fetch` events, as in a service worker.
//
// The outbound call uses wasi:http directly rather than fetch(): fetch() would work
// too, but it rejects every failure with a bare "NetworkError", while wasi:http says
// why, e.g. HTTP-request-denied when wpkg.toml does not allow the destination.
import { handle as send } from "wasi:http/outgoing-handler@0.2.10";
import { Fields, OutgoingRequest } from "wasi:http/types@0.2.10";

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

function handle(request) {
  const url = new URL(request.url);
  if (url.pathname === "/") {
    return text(200, "Hello from {{name}}!\n");
  }
  if (url.pathname === "/fetch") {
    const target = url.searchParams.get("url"); // percent-decoded
    if (!target) return text(400, "missing ?url=\n");
    try {
      const { status, body } = get(target, 1024);
      return text(200, `upstream answered ${status}: ${body}`);
    } catch (err) {
      return text(502, `outbound call failed: ${err.message}\n`);
    }
  }
  return text(404, "not found\n");
}

function text(status, body) {
  return new Response(body, { status, headers: { "content-type": "text/plain" } });
}

// GET `url`; returns its status and the first `limit` bytes of its body, as text.
// Throws an Error saying what went wrong.
function get(url, limit) {
  let u;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`not a URL: ${url}`);
  }
  const scheme = u.protocol.slice(0, -1);
  const request = new OutgoingRequest(new Fields());
  request.setScheme(
    scheme === "http" ? { tag: "HTTP" } : scheme === "https" ? { tag: "HTTPS" } : { tag: "other", val: scheme },
  );
  request.setAuthority(u.host);
  request.setPathWithQuery(u.pathname + u.search);
  let future;
  try {
    future = send(request, undefined);
  } catch (err) {
    throw new Error(describe(err.payload ?? err));
  }
  future.subscribe().block();
  const answer = future.get().val; // { tag: "ok", val: response } or { tag: "err", val: error-code }
  if (answer.tag === "err") throw new Error(describe(answer.val));
  const response = answer.val;
  const stream = response.consume().stream();
  const chunks = [];
  let size = 0;
  try {
    while (size < limit) {
      const chunk = stream.blockingRead(BigInt(limit - size));
      chunks.push(chunk);
      size += chunk.length;
    }
  } catch {
    // the stream closed: the body ended
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return { status: response.status(), body: new TextDecoder().decode(bytes) };
}

// A wasi:http error-code, readably.
function describe(code) {
  if (!code || typeof code.tag !== "string") return String(code?.message ?? code);
  if (code.tag === "HTTP-request-denied") {
    return "HTTP-request-denied (wpkg.toml does not allow this destination: see outbound_http)";
  }
  if (code.val === undefined) return code.tag;
  return `${code.tag} ${JSON.stringify(code.val, (_, v) => (typeof v === "bigint" ? String(v) : v))}`;
}
