"""The HTTP app's direct routes: a fixed path goes straight to its endpoint, with what Starlette
would have done around it (405, 404, a 500 for a failing endpoint), and the rest through Starlette."""

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.runtime.http import build_http_app


async def _ready() -> tuple[bool, str]:
    return True, "ok"


async def echo(request: Request) -> Response:
    return JSONResponse({"path": request.url.path, "body": (await request.body()).decode()}, status_code=202)


async def broken(_: Request) -> Response:
    raise RuntimeError("a bug")


async def by_name(request: Request) -> Response:
    return JSONResponse({"name": request.path_params["name"]})


async def test_fixed_paths_and_the_rest_answer_as_starlette_would() -> None:
    app = build_http_app(
        [
            Route("/alerts", echo, methods=["POST"]),
            Route("/broken", broken, methods=["GET"]),
            Route("/items/{name}", by_name, methods=["GET"]),
        ],
        _ready,
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        posted = await client.post("/alerts", content=b"hello")
        assert (posted.status_code, posted.json()) == (202, {"path": "/alerts", "body": "hello"})
        assert (await client.get("/alerts")).status_code == 405
        assert (await client.get("/nowhere")).status_code == 404
        failed = await client.get("/broken")
        assert failed.status_code == 500 and failed.json() == {"error": "internal error"}
        assert (await client.get("/items/disk")).json() == {"name": "disk"}
        assert (await client.get("/readyz")).json() == {"ready": True, "detail": "ok"}
