"""The Starlette app: four pages (static HTML + a little JS) over read-only JSON endpoints.

Every route is GET; handlers are sync (Starlette runs them in its thread pool) and only read files.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sftpipe.dashboard import data_api, runs_api, sources

STATIC = Path(__file__).with_name("static")
PAGES = {"/": "runs.html", "/run/{ref}": "run.html", "/compare": "compare.html", "/data": "data.html"}


def plotly_js() -> Path:
    """plotly.min.js as shipped inside the `plotly` PyPI package (no CDN, nothing fetched at run time)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the plotly package is not installed (it is in pyproject.toml)")
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the plotly package")
    return path


def _json(status: int, body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _endpoint(fn: Callable[..., Any], *path_params: str, **query: Callable[[str], Any]) -> Callable:
    """Wrap fn(root, *path params, **typed query params) as a JSON endpoint; errors become JSON too."""

    def handler(request: Request) -> Response:
        root = request.app.state.root
        try:
            args = [request.path_params[p] for p in path_params]
            kwargs = {
                k: cast(request.query_params[k])
                for k, cast in query.items()
                if request.query_params.get(k) not in (None, "")
            }
            return _json(200, fn(root, *args, **kwargs))
        except (runs_api.NotFound, data_api.DataNotFound) as exc:
            return _json(404, {"error": str(exc)})
        except ValueError as exc:  # a malformed query value or filter
            return _json(400, {"error": str(exc)})
        except (data_api.DataUnavailable, sources.RunIndexError, sources.MetricsError, OSError) as exc:
            return _json(422, {"error": str(exc)})

    return handler


def _compare(root: Path, runs: str) -> dict[str, Any]:
    refs = [r for r in runs.split(",") if r]
    if len(refs) < 2:
        raise ValueError("compare needs at least two runs (?runs=a,b)")
    for ref in refs:
        runs_api.run(root, ref)  # same name rules and 404s as the run pages
    return sources.compare(root, refs)


def _page(name: str) -> Callable:
    def handler(request: Request) -> Response:
        return FileResponse(STATIC / name, headers={"Cache-Control": "no-store"})

    return handler


def _plotly(request: Request) -> Response:
    return FileResponse(plotly_js(), media_type="application/javascript")


def create_app(root: Path) -> Starlette:
    """The dashboard over the project at `root` (its artifacts/ and config/)."""
    api = [
        Route("/api/runs", _endpoint(runs_api.runs, status=str, variant=str, data=str)),
        Route("/api/runs/{ref}", _endpoint(runs_api.run, "ref")),
        Route("/api/runs/{ref}/series", _endpoint(runs_api.series, "ref")),
        Route("/api/runs/{ref}/checkpoints", _endpoint(runs_api.checkpoints, "ref")),
        Route("/api/runs/{ref}/events", _endpoint(runs_api.events, "ref")),
        Route("/api/runs/{ref}/log", _endpoint(runs_api.log_tail, "ref", lines=int)),
        Route("/api/runs/{ref}/records", _endpoint(runs_api.records, "ref")),
        Route("/api/compare", _endpoint(_compare, runs=str)),
        Route("/api/data", _endpoint(data_api.datasets)),
        Route("/api/data/{name}", _endpoint(data_api.dataset, "name")),
        Route(
            "/api/data/{name}/samples",
            _endpoint(
                data_api.samples,
                "name",
                state=str,
                scaffold=str,
                agent_type=str,
                min_score=float,
                max_score=float,
                offset=int,
                limit=int,
            ),
        ),
        Route("/api/data/{name}/samples/{index:int}", _endpoint(data_api.sample, "name", "index")),
        Route("/api/data/{name}/samples/{index:int}/tokens", _endpoint(data_api.tokens, "name", "index")),
        Route("/api/data/{name}/checks", _endpoint(data_api.checks, "name")),
    ]
    pages = [Route(path, _page(name)) for path, name in PAGES.items()]
    static = [Route("/static/plotly.min.js", _plotly), Mount("/static", StaticFiles(directory=STATIC))]
    app = Starlette(routes=api + pages + static)
    app.state.root = Path(root).resolve()
    return app
