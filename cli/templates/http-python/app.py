"""{{name}}: an HTTP service (wasi:http/proxy), made a component by componentize-py.

`/` answers; `/fetch?url=URL` calls URL, which wpkg allows only when wpkg.toml lists
the destination under `outbound_http`; other paths are 404.
"""

import re
from urllib.parse import parse_qs, urlsplit

from wit_world import exports
from wit_world.imports import outgoing_handler
from wit_world.imports.types import (
    ErrorCode,
    ErrorCode_HttpRequestDenied,
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
    Scheme_Https,
    Scheme_Other,
)
from componentize_py_types import Err, Ok


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        url = urlsplit(request.path_with_query() or "/")
        if url.path == "/":
            return respond(response_out, 200, "Hello from {{name}}!\n")
        if url.path == "/fetch":
            target = parse_qs(url.query).get("url")  # percent-decoded
            if not target:
                return respond(response_out, 400, "missing ?url=\n")
            try:
                status, body = get(target[0], 1024)
            except Exception as e:
                return respond(response_out, 502, f"outbound call failed: {e}\n")
            return respond(response_out, 200, f"upstream answered {status}: {body}")
        return respond(response_out, 404, "not found\n")


def respond(response_out: ResponseOutparam, status: int, text: str) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    data = text.encode()
    with body.write() as stream:
        for i in range(0, len(data), 4096):
            stream.blocking_write_and_flush(data[i : i + 4096])
    OutgoingBody.finish(body, None)


def get(url: str, limit: int) -> tuple[int, str]:
    """GETs `url`; returns its status and the first `limit` bytes of its body, as text."""
    u = urlsplit(url)
    if not u.scheme or not u.netloc:
        raise ValueError(f"not a URL: {url}")
    request = OutgoingRequest(Fields())
    scheme = {"http": Scheme_Http(), "https": Scheme_Https()}.get(u.scheme, Scheme_Other(u.scheme))
    request.set_scheme(scheme)
    request.set_authority(u.netloc)
    request.set_path_with_query((u.path or "/") + (f"?{u.query}" if u.query else ""))
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        raise RuntimeError(describe(e.value))
    with future.subscribe() as ready:
        ready.block()
    answer = future.get()  # Ok(Ok(response)) or Ok(Err(error-code))
    if isinstance(answer.value, Err):
        raise RuntimeError(describe(answer.value.value))
    response = answer.value.value
    status = response.status()
    body = response.consume()
    data = b""
    with body.stream() as stream:
        try:
            while len(data) < limit:
                data += stream.blocking_read(limit - len(data))
        except Err:
            pass  # the stream closed: the body ended
    return status, data.decode(errors="replace")


def describe(code: ErrorCode) -> str:
    """A wasi:http error-code, readably: its name, and its details if it has any."""
    if isinstance(code, ErrorCode_HttpRequestDenied):
        return "HTTP-request-denied (wpkg.toml does not allow this destination: see outbound_http)"
    name = re.sub(r"(?<!^)(?=[A-Z])", "-", type(code).__name__.removeprefix("ErrorCode_")).lower()
    value = getattr(code, "value", None)
    return name if value is None else f"{name}: {value}"
