"""Serve a local model (optionally under a KV method) as an OpenAI-compatible endpoint on 127.0.0.1."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evalworkers.backends import reference
from evalworkers.backends.local import LocalBackend, ModelLoadError, load
from evalworkers.backends.local_server import ModelServer
from evalworkers.targets.local import config_for


class Command(BaseCommand):
    help = ("Expose a local model through /v1/chat/completions, /v1/completions and /v1/models on 127.0.0.1, "
            "so the endpoint path can be tried with a real model.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--local", required=True, help="'reference', a model folder, a .gguf file or a repo id.")
        parser.add_argument("--revision", help="Hugging Face revision (with a repo id).")
        parser.add_argument("--method", default="full", help="KV method, e.g. snapkv (default: full).")
        parser.add_argument("--budget", type=float, default=1.0, help="KV budget in (0, 1] (default 1.0).")
        parser.add_argument("--port", type=int, required=True, help="Port on 127.0.0.1.")
        parser.add_argument("--served-name", help="Model name clients send (default: the --local value, or "
                                                  "smollm2-135m-instruct for the reference model).")

    def handle(self, *args: object, **opts: object) -> None:
        port = int(opts["port"])  # type: ignore[arg-type]
        if not 0 < port < 65536:
            raise CommandError(f"--port must be between 1 and 65535; got {port}.")
        source = str(opts["local"])
        config = config_for(source, opts["revision"])  # type: ignore[arg-type]
        try:
            loaded = load(config)
            backend = LocalBackend(loaded, str(opts["method"]), float(opts["budget"]),  # type: ignore[arg-type]
                                   files_dir=config.files_dir, memory_limit_bytes=config.memory_limit_bytes)
        except ModelLoadError as exc:
            raise CommandError(f"--local/--method/--budget: {exc}.") from None
        name = str(opts["served_name"] or (reference.FOLDER if source == reference.NAME else source))
        try:
            server = ModelServer(backend, name, port)
        except OSError as exc:
            raise CommandError(f"--port {port}: {exc.strerror or exc}.") from None
        self.stdout.write(f"serving {loaded.name} as '{name}' ({backend.plan.method} {backend.plan.budget:g}, "
                          f"{loaded.placement}) on "
                          f"http://127.0.0.1:{port}/v1", ending="\n")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
