"""freqtrade config overlay that points ccxt's Binance client at the replay exchange.

Passed as the last ``--config``, the overlay takes precedence over the user's config. It rewrites
every API URL of ccxt's binance class, read from the installed ccxt so that an endpoint group
added by a ccxt update is redirected too. It also turns websockets off, keeps freqtrade's
Binance downloader from fetching archives from Binance's public data host, turns fiat conversion
(CoinGecko) off, clears API keys and forces dry-run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)


def _loopback_url(url: str, base_url: str) -> str:
    """Rewrite ``https://host[:port]/path`` to ``<base_url>/host/path``."""
    parts = urlsplit(url)
    local = urlsplit(base_url)
    scheme = "ws" if parts.scheme in ("ws", "wss") else local.scheme
    return f"{scheme}://{local.netloc}/{parts.hostname}{parts.path}"


def _rewrite(urls: dict | str, base_url: str) -> dict | str:
    if isinstance(urls, str):
        return _loopback_url(urls, base_url)
    return {key: _rewrite(value, base_url) for key, value in urls.items()}


def binance_api_urls(base_url: str) -> dict:
    """Return ccxt's Binance ``urls['api']`` tree with every URL rewritten to ``base_url``."""
    import ccxt.pro  # the pro class is a superset: it adds the websocket URLs

    # NOTE: built with no arguments, the ccxt class makes no request.
    return _rewrite(ccxt.pro.binance().urls["api"], base_url)


def build_config_overlay(base_url: str, pairs: list[str] | None = None) -> dict:
    """Build the overlay dict for a replay exchange listening at ``base_url``."""
    if urlsplit(base_url).hostname != "127.0.0.1":
        raise ValueError(f"the replay exchange URL must be on 127.0.0.1, got {base_url!r}")
    ccxt_urls = {"urls": {"api": binance_api_urls(base_url)}}
    exchange: dict = {
        "name": "binance",
        "key": "",
        "secret": "",
        "enable_ws": False,
        # Without this, freqtrade's Binance class downloads 1s-5m spot candles from an archive host.
        "only_from_ccxt": True,
        "ccxt_config": ccxt_urls,
        "ccxt_async_config": ccxt_urls,
    }
    if pairs:
        exchange["pair_whitelist"] = list(pairs)
    # freqtrade's RPC layer fetches fiat rates from CoinGecko when a fiat currency is set.
    return {"dry_run": True, "fiat_display_currency": "", "exchange": exchange}


def write_config_overlay(path: Path | str, base_url: str, pairs: list[str] | None = None) -> Path:
    """Write the overlay as JSON to ``path`` and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_config_overlay(base_url, pairs), indent=2) + "\n")
    logger.info("Wrote replay exchange config overlay %s (URLs under %s)", path, base_url)
    return path
