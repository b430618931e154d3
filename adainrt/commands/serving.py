"""`adainrt serve` and its load test, `adainrt bench-serve`."""

from __future__ import annotations

from pathlib import Path

import click

from adainrt.commands.common import (
    FiniteFloat,
    api_key_option,
    backend_option,
    clean_errors,
    exported_graphs,
    json_option,
    model_option,
    overwrite_option,
    say,
    variant_option,
)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@model_option("Folder of graphs from `adainrt export`. Default: the bundled weights, exported once.")
@variant_option
@backend_option
@click.option("--replicas", type=click.IntRange(1), default=1, show_default=True,
              help="Replicas (each loads the graphs once).")
@click.option("--min-replicas", type=click.IntRange(1), help="Autoscale from this many replicas ...")
@click.option("--max-replicas", type=click.IntRange(1), help="... to this many, by load.")
@click.option("--cpus-per-replica", type=FiniteFloat(0, low_open=True), default=1.0, show_default=True)
@click.option("--gpus-per-replica", type=FiniteFloat(0, low_open=False), default=0.0, show_default=True)
@click.option("--address", help="Join this Ray cluster (e.g. ray://head:10001 or auto). Default: a local Ray.")
@api_key_option("Require 'Authorization: Bearer KEY'; an empty one is refused. Default: no key")
@click.option("--max-pixels", type=int, default=2048 * 2048, show_default=True,
              help="Refuse (413) content or style images above this many pixels after resizing: what one "
                   "request may make a replica hold.")
@click.option("--max-body-mb", type=FiniteFloat(0, low_open=True), default=50.0, show_default=True,
              help="Larger request bodies get 413, cut off while they arrive.")
@click.option("--body-timeout", type=FiniteFloat(0, low_open=True), default=60.0, show_default=True,
              help="Seconds a request body may take to arrive; a slower or stalled client gets 408.")
@click.option("--bank-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The style bank the replicas share (default $ADAINRT_STYLES or the cache's styles/). On a "
                   "cluster, this and --model must be on storage every node sees.")
@click.option("--max-batch", type=click.IntRange(1, 64),
              help="Most stylize requests a replica runs together (one encoder and one decoder run per content "
                   "size, each request with its own style and alpha). 1 turns batching off. Default: 8 on a GPU "
                   "backend or with --gpus-per-replica; 1 on a CPU, where one image already fills the cores "
                   "(measured: no gain).")
@click.option("--batch-wait-ms", type=click.FloatRange(0, 1000), default=10.0, show_default=True,
              help="How long the first request of a batch waits for others to join it.")
@clean_errors
def serve(host: str, port: int, model_dir: Path | None, variant: str | None, backend: str, replicas: int,
          min_replicas: int | None, max_replicas: int | None, cpus_per_replica: float, gpus_per_replica: float,
          address: str | None, api_key: str | None, max_pixels: int, max_body_mb: float, body_timeout: float,
          bank_dir: Path | None, max_batch: int | None, batch_wait_ms: float) -> None:
    """Serve stylization over HTTP on Ray Serve (pip install 'adainrt[serve]').

    \b
      adainrt serve --port 8000 --replicas 2
      curl -X POST --data-binary @painting.jpg localhost:8000/v1/styles/starry
      curl -X POST --data-binary @photo.jpg 'localhost:8000/v1/stylize?style=starry&alpha=0.8' -o out.png
    \b
    The web page is at /, the API's description at /docs and /openapi.json.
    Routes: GET /healthz, GET /v1/styles, POST /v1/styles/NAME (image body),
    POST /v1/stylize?style=NAME[,NAME2]&alpha=A&size=S[&style_weights=..&preserve_color=color]
    (image body, or multipart 'content' and 'style' parts). Errors are JSON {"error": ...}:
    400 bad input, 401 key, 404 unknown style, 406 Accept, 408 slow body, 413 too big. Ctrl-C stops it.
    Requests arriving together are batched (--max-batch), whatever their styles; the
    X-Adainrt-Batch response header says how many shared the run.
    """
    from adainrt.server import Placement, run_service

    run_service(host, port, Placement(replicas, min_replicas, max_replicas, cpus_per_replica, gpus_per_replica,
                                      address),
                model_dir, variant, graphs=exported_graphs(), say=say, backend=backend, max_pixels=max_pixels,
                max_body_bytes=int(max_body_mb * (1 << 20)), api_key=api_key, bank_dir=bank_dir, max_batch=max_batch,
                batch_wait_s=batch_wait_ms / 1000.0, body_timeout_s=body_timeout)


@click.command("bench-serve")
@click.argument("url")
@click.option("--concurrency", "levels", type=int, multiple=True, default=[1, 4, 16], show_default=True,
              help="Requests in flight at once; repeat for several levels.")
@click.option("--requests", type=int, default=50, show_default=True, help="Requests per level.")
@click.option("--size", type=int, default=256, show_default=True, help="Square content size sent.")
@click.option("--style", default="bench", show_default=True,
              help="Stored style to use; added from the bundled sample style when the server lacks it.")
@api_key_option("The server's key")
@model_option("Also time the in-process Stylizer on these graphs (the cost of serving).")
@click.option("--time-limit", type=float, default=300.0, show_default=True, help="Seconds per level at most.")
@json_option
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw throughput and latency against concurrency into this PNG.")
@overwrite_option("an existing --plot file")
@clean_errors
def bench_serve(url: str, levels: tuple[int, ...], requests: int, size: int, style: str, api_key: str | None,
                model_dir: Path | None, time_limit: float, as_json: bool, plot: Path | None, overwrite: bool) -> None:
    """Load-test an `adainrt serve` on this machine: throughput and p50/p95/p99 latency per concurrency.

    \b
      adainrt serve --port 8000 --replicas 2 &
      adainrt bench-serve http://127.0.0.1:8000 --concurrency 1 --concurrency 4 --concurrency 16 --requests 100
    Loopback addresses only; each level is bounded in requests and time.
    """
    from adainrt.benchmarks.run import load_test

    result = load_test(url, levels, requests, size, style, api_key, model_dir, time_limit, plot, overwrite, say=say)
    click.echo(result.report(as_json))
